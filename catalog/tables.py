"""The catalog's tables as SQLAlchemy 2.0 classes. The migrations are the truth;
a test keeps these classes and the migrated schema identical."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    cast,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from catalog.media import Picture

ASSET_KINDS = ("master", "rendition")
ASSET_STATUSES = ("pending", "indexed", "missing", "error")


class RenditionStatus(StrEnum):
    """Where a rendition stands; ``catalog.renditions`` owns every change of it."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


RENDITION_STATUSES = tuple(s.value for s in RenditionStatus)


class ProxyStatus(StrEnum):
    """Where a proxy stands; ``catalog.proxies`` owns every change of it."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


PROXY_STATUSES = tuple(s.value for s in ProxyStatus)

# The HNSW index needs a fixed dimension; vectors of other sizes (another CLIP
# model) are stored too, and get their own partial index when that model is used.
DEFAULT_EMBEDDING_DIM = 512


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[dict[str, Any]]: JSONB,
    }


class Storage(Base):
    """A named root that every host mounts at its own path (catalog/storages.py); ``marker``
    is the id written at its root. A host's own disk has ``host`` set and is rooted at ``/``."""

    __tablename__ = "storages"
    __table_args__ = (
        CheckConstraint("name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'", name="name_plain"),
        CheckConstraint("(host IS NOT NULL) = (name LIKE 'host-%')", name="host_named"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    marker: Mapped[str] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WorkerQueues(Base):
    """The queues a running worker listens to (procrastinate's worker id), so ``footage jobs``
    can say which waiting jobs no running worker would take. Rows of workers procrastinate no
    longer lists are dropped whenever a worker registers."""

    __tablename__ = "worker_queues"

    worker_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    host: Mapped[str] = mapped_column(Text)
    queues: Mapped[list[str]] = mapped_column(ARRAY(Text))
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())


# A path inside a storage: relative, no leading slash ('' is the storage's root).
_RELATIVE = "{0} NOT LIKE '/%'"


class Root(Base):
    """A watched folder."""

    __tablename__ = "roots"
    __table_args__ = (
        UniqueConstraint("storage_id", "rel_path"),
        CheckConstraint(_RELATIVE.format("rel_path"), name="rel_path_relative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    storage_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("storages.id", ondelete="RESTRICT"))
    rel_path: Mapped[str] = mapped_column(Text)
    polling: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_scan_at: Mapped[datetime | None]
    # Seen as a mount point (a NAS share, a volume): when it no longer is, it is offline.
    mounted: Mapped[bool] = mapped_column(server_default=text("false"))
    # Since when the folder has been unmounted or unreachable; None while it is there.
    offline_since: Mapped[datetime | None]


class Asset(Base):
    """One file, master or rendition, with the media facts probed from it.

    Times are seconds; rates and aspect ratios are stored as exact rationals
    (numerator, denominator) because 30000/1001 is not 29.97.
    """

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("id", "kind"),  # target of the renditions' kind-checked keys
        UniqueConstraint("storage_id", "rel_path"),
        CheckConstraint(_in("kind", ASSET_KINDS), name="kind_known"),
        CheckConstraint(_in("status", ASSET_STATUSES), name="status_known"),
        CheckConstraint("status <> 'error' OR error IS NOT NULL", name="error_has_message"),
        CheckConstraint(_RELATIVE.format("rel_path") + " AND rel_path <> ''", name="rel_path_relative"),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
        CheckConstraint("width > 0 AND height > 0", name="dimensions_positive"),
        CheckConstraint("sar_num > 0 AND sar_den > 0", name="sar_positive"),
        CheckConstraint("dar_num > 0 AND dar_den > 0", name="dar_positive"),
        CheckConstraint("frame_rate_num > 0 AND frame_rate_den > 0", name="frame_rate_positive"),
        CheckConstraint("duration_s >= 0", name="duration_not_negative"),
        CheckConstraint("bit_depth BETWEEN 1 AND 16", name="bit_depth_range"),
        CheckConstraint("rotation IN (0, 90, 180, 270)", name="rotation_quarter_turns"),
        Index(None, "fingerprint"),
        Index(None, "content_hash"),
        Index(None, "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, server_default="master")
    root_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("roots.id", ondelete="SET NULL"), index=True)
    storage_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("storages.id", ondelete="RESTRICT"))
    rel_path: Mapped[str] = mapped_column(Text)  # inside the storage; catalog.storages.Mounts resolves it
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)

    fingerprint: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[datetime | None]

    container: Mapped[str | None] = mapped_column(Text)
    video_codec: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sar_num: Mapped[int | None] = mapped_column(Integer)
    sar_den: Mapped[int | None] = mapped_column(Integer)
    dar_num: Mapped[int | None] = mapped_column(Integer)
    dar_den: Mapped[int | None] = mapped_column(Integer)
    frame_rate_num: Mapped[int | None] = mapped_column(Integer)
    frame_rate_den: Mapped[int | None] = mapped_column(Integer)
    variable_frame_rate: Mapped[bool | None]
    duration_s: Mapped[float | None] = mapped_column(Double)
    start_time_s: Mapped[float | None] = mapped_column(Double)
    pixel_format: Mapped[str | None] = mapped_column(Text)
    bit_depth: Mapped[int | None] = mapped_column(SmallInteger)
    color_primaries: Mapped[str | None] = mapped_column(Text)
    color_transfer: Mapped[str | None] = mapped_column(Text)
    color_matrix: Mapped[str | None] = mapped_column(Text)
    color_range: Mapped[str | None] = mapped_column(Text)
    field_order: Mapped[str | None] = mapped_column(Text)
    rotation: Mapped[int | None] = mapped_column(SmallInteger)
    timecode: Mapped[str | None] = mapped_column(Text)
    audio_streams: Mapped[list[dict[str, Any]]] = mapped_column(server_default=text("'[]'::jsonb"))

    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    indexed_at: Mapped[datetime | None]

    @property
    def picture(self) -> Picture | None:
        """The coded picture as probed (size, pixel aspect, rotation); ``None`` before probing."""
        if not self.width or not self.height:
            return None
        sar = Fraction(self.sar_num or 1, self.sar_den or 1)
        return Picture(self.width, self.height, sar, self.rotation or 0)


class MomentView(Base):
    """One view of a moment, with its embedding: the moment's time span, the
    frame that stands for it, and ``view``, the number of the square crop of
    that frame (crops are embedded separately so the whole picture is
    searchable). The table keeps its first name, ``segments``."""

    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("asset_id", "embedding_model", "frame_s", "view"),
        # Also keeps the span ordered (start <= end).
        CheckConstraint("frame_s >= start_s AND frame_s <= end_s", name="frame_in_span"),
        CheckConstraint("view >= 0", name="view_not_negative"),
        CheckConstraint("vector_dims(embedding) = embedding_dim", name="embedding_dim_matches"),
        Index(None, "embedding_model"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    start_s: Mapped[float] = mapped_column(Double)
    end_s: Mapped[float] = mapped_column(Double)
    frame_s: Mapped[float] = mapped_column(Double)
    view: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    embedding: Mapped[Any] = mapped_column(HALFVEC())
    embedding_model: Mapped[str] = mapped_column(Text)
    embedding_dim: Mapped[int] = mapped_column(SmallInteger)


class Rendition(Base):
    """A request for (and, once written, the link to) an upscaled version of a master.

    ``master_kind`` and ``rendition_kind`` are constant columns that take part
    in the foreign keys, so the database itself refuses a rendition whose
    master is not a master or whose file is not a rendition (and so a
    rendition can never be its own master).
    """

    __tablename__ = "renditions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["master_id", "master_kind"],
            ["assets.id", "assets.kind"],
            name="fk_renditions_master_is_master",
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["rendition_asset_id", "rendition_kind"],
            ["assets.id", "assets.kind"],
            name="fk_renditions_file_is_rendition",
            ondelete="RESTRICT",
        ),
        CheckConstraint("master_kind = 'master'", name="master_kind_master"),
        CheckConstraint("rendition_kind = 'rendition'", name="rendition_kind_rendition"),
        CheckConstraint(_in("status", RENDITION_STATUSES), name="status_known"),
        CheckConstraint("target_width > 0 AND target_height > 0", name="target_positive"),
        CheckConstraint("model_sha256 ~ '^[0-9a-f]{64}$'", name="model_sha256_hex"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint(
            "frames_done >= 0 AND (frames_total IS NULL OR frames_done <= frames_total)",
            name="frames_done_range",
        ),
        CheckConstraint(
            "status <> 'done' OR (rendition_asset_id IS NOT NULL AND progress = 1)",
            name="done_has_file",
        ),
        CheckConstraint("status <> 'failed' OR error IS NOT NULL", name="failed_has_error"),
        CheckConstraint(_RELATIVE.format("output_rel_path"), name="output_rel_path_relative"),
        CheckConstraint("(output_storage_id IS NULL) = (output_rel_path IS NULL)", name="output_whole"),
        Index(None, "status"),
        Index(None, "job_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    master_id: Mapped[int] = mapped_column(BigInteger, index=True)
    master_kind: Mapped[str] = mapped_column(Text, server_default="master")
    rendition_asset_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    rendition_kind: Mapped[str] = mapped_column(Text, server_default="rendition")

    label: Mapped[str] = mapped_column(Text)
    target_width: Mapped[int] = mapped_column(Integer)
    target_height: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(Text)
    model_sha256: Mapped[str | None] = mapped_column(Text)  # None: linked by hand, model unknown
    parameters: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    status: Mapped[str] = mapped_column(Text, server_default=RenditionStatus.QUEUED.value)
    progress: Mapped[float] = mapped_column(Double, server_default=text("0"))
    frames_done: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    frames_total: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    worker: Mapped[str | None] = mapped_column(Text)
    # The render that owns the rendition now (catalog/renditions.py: start, renew, holding).
    lease_epoch: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    lease_expires_at: Mapped[datetime | None]
    output_storage_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("storages.id", ondelete="RESTRICT"))
    output_rel_path: Mapped[str | None] = mapped_column(Text)
    fps: Mapped[float | None] = mapped_column(Double)

    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    timings: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    provenance: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class Proxy(Base):
    """A small file every browser and editor plays, made from one version (master or rendition)
    of a family; one per version. Not an asset: never embedded, searched or watched; it lives in
    the renditions storage and is listed with the version it stands in for."""

    __tablename__ = "proxies"
    __table_args__ = (
        CheckConstraint(_in("status", PROXY_STATUSES), name="status_known"),
        CheckConstraint("status <> 'failed' OR error IS NOT NULL", name="failed_has_error"),
        CheckConstraint("status <> 'done' OR storage_id IS NOT NULL", name="done_has_file"),
        CheckConstraint("(storage_id IS NULL) = (rel_path IS NULL)", name="file_whole"),
        CheckConstraint(_RELATIVE.format("rel_path") + " AND rel_path <> ''", name="rel_path_relative"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        UniqueConstraint("storage_id", "rel_path"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(Text, server_default=ProxyStatus.QUEUED.value)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Double, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    storage_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("storages.id", ondelete="RESTRICT"))
    rel_path: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    video_codec: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_s: Mapped[float | None] = mapped_column(Double)
    # What it was made from (the source's content hash) and how (format, encoder, seconds taken).
    provenance: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]


class AssetWords(Base):
    """What an asset is called and what people wrote about it, as one full-text document
    (catalog/words.py keeps it): name and folder parts weigh A, tags B, notes C, metadata D,
    so ``name:``, ``tag:``, ``note:`` and ``meta:`` are weight restrictions of one query."""

    __tablename__ = "asset_words"
    __table_args__ = (
        Index(None, "document", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
        Index(None, "name_words", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
    )

    asset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    name_words: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    folder_words: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    meta_words: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    document: Mapped[Any] = mapped_column(TSVECTOR, server_default=text("''::tsvector"))


class _OnAssetOrMoment:
    """What notes and tags share: the asset, the moment's time (None: the whole asset), who and when."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    at_s: Mapped[float | None] = mapped_column(Double)
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Note(_OnAssetOrMoment, Base):
    """A note on an asset or one of its moments."""

    __tablename__ = "notes"
    __table_args__ = (
        CheckConstraint("at_s >= 0", name="at_not_negative"),
        CheckConstraint("length(btrim(text)) > 0", name="text_not_blank"),
    )

    text: Mapped[str] = mapped_column(Text)


class Tag(_OnAssetOrMoment, Base):
    """A keyword on an asset or one of its moments, once each."""

    __tablename__ = "tags"
    __table_args__ = (
        CheckConstraint("at_s >= 0", name="at_not_negative"),
        CheckConstraint("word ~ '^[^[:space:]]+$'", name="one_word"),
        Index(
            "uq_tags_asset_id_at_s_word", "asset_id", "at_s", "word", unique=True, postgresql_nulls_not_distinct=True
        ),
    )

    word: Mapped[str] = mapped_column(Text)


class Selection(Base):
    """A named, ordered collection of moments and assets that the team shares."""

    __tablename__ = "selections"
    __table_args__ = (CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SelectionItem(Base):
    """One entry of a selection, at ``position``: a moment (``at_s``) or a whole asset."""

    __tablename__ = "selection_items"
    __table_args__ = (
        CheckConstraint("position >= 0", name="position_not_negative"),
        CheckConstraint("at_s >= 0", name="at_not_negative"),
    )

    selection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("selections.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    at_s: Mapped[float | None] = mapped_column(Double)
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


# Searches must use this same expression (cast to the fixed dimension) to hit the index;
# catalog/vector_index.py builds it (parameters and build memory explained there).
Index(
    f"ix_segments_embedding_hnsw_{DEFAULT_EMBEDDING_DIM}",
    cast(MomentView.embedding, HALFVEC(DEFAULT_EMBEDDING_DIM)).label("embedding_fixed"),
    postgresql_using="hnsw",
    postgresql_ops={"embedding_fixed": "halfvec_cosine_ops"},
    postgresql_where=MomentView.embedding_dim == DEFAULT_EMBEDDING_DIM,
)

TABLES: tuple[type[Base], ...] = (
    Storage,
    WorkerQueues,
    Root,
    Asset,
    MomentView,
    Rendition,
    Proxy,
    AssetWords,
    Note,
    Tag,
    Selection,
    SelectionItem,
)
