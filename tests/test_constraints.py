"""Every constraint that keeps the catalog honest must reject what it forbids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import Asset, MomentView, Rendition, Root
from catalog.tables import Storage

SHA = "a" * 64


@pytest.fixture
def nas(session: Session) -> int:
    storage = Storage(name="nas", marker="m" * 32)
    session.add(storage)
    session.flush()
    return storage.id


def _asset(session: Session, path: str, kind: str = "master", **facts: Any) -> Asset:
    # By default on the first storage (this host's own disk, made by the migrations).
    storage_id = facts.pop("storage_id", None) or session.scalar(sa.select(Storage.id).order_by(Storage.id).limit(1))
    asset = Asset(storage_id=storage_id, rel_path=path.lstrip("/"), kind=kind, **facts)
    session.add(asset)
    session.flush()
    return asset


def _rendition(master: Asset, **fields: Any) -> Rendition:
    values: dict[str, Any] = dict(
        master_id=master.id,
        label="4k",
        target_width=3840,
        target_height=2160,
        model_name="RealESRGAN_x4plus",
        model_sha256=SHA,
    )
    values.update(fields)
    return Rendition(**values)


def _unit(dim: int) -> list[float]:
    v = np.random.default_rng(dim).normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def _rejected(session: Session, obj: object, constraint: str) -> None:
    with pytest.raises(IntegrityError) as info, session.begin_nested():
        session.add(obj)
        session.flush()
    assert constraint in str(info.value)


def test_valid_rows_are_accepted(session: Session, nas: int) -> None:
    root = Root(storage_id=nas, rel_path="media/masters")
    session.add(root)
    session.flush()
    master = _asset(
        session,
        "media/masters/a.mov",
        storage_id=nas,
        root_id=root.id,
        width=1920,
        height=1080,
        frame_rate_num=30000,
        frame_rate_den=1001,
        rotation=0,
        bit_depth=10,
    )
    file = _asset(session, "a.4k.mov", kind="rendition", storage_id=nas)
    session.add(
        MomentView(
            asset_id=master.id,
            start_s=0,
            end_s=2,
            frame_s=1,
            embedding=_unit(512),
            embedding_model="ViT-B-32/x",
            embedding_dim=512,
        )
    )
    done = _rendition(master, rendition_asset_id=file.id, status="done", progress=1.0)
    session.add(done)
    done.output_storage_id, done.output_rel_path = nas, "a.4k.mov"
    session.flush()
    assert master.status == "pending" and master.audio_streams == []


def test_asset_path_is_unique_in_its_storage(session: Session, nas: int) -> None:
    _asset(session, "media/a.mov", storage_id=nas)
    _rejected(session, Asset(storage_id=nas, rel_path="media/a.mov"), "uq_assets_storage_id_rel_path")
    other = Storage(name="other", marker="o" * 32)
    session.add(other)
    session.flush()
    _asset(session, "media/a.mov", storage_id=other.id)  # the same path on another storage is another file


def test_root_path_is_unique(session: Session, nas: int) -> None:
    session.add(Root(storage_id=nas, rel_path="media"))
    session.flush()
    _rejected(session, Root(storage_id=nas, rel_path="media"), "uq_roots_storage_id_rel_path")


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"name": "Nas Share"}, "ck_storages_name_plain"),
        ({"name": "host-a"}, "ck_storages_host_named"),
        ({"name": "plain", "host": "a"}, "ck_storages_host_named"),
        ({"name": "nas"}, "uq_storages_name"),
    ],
)
def test_storage_checks(session: Session, nas: int, fields: dict[str, Any], constraint: str) -> None:
    _rejected(session, Storage(marker="x" * 32, **fields), constraint)


def test_a_storage_with_files_cannot_be_deleted(session: Session, nas: int) -> None:
    _asset(session, "a.mov", storage_id=nas)
    with pytest.raises(IntegrityError) as info, session.begin_nested():
        session.execute(sa.delete(Storage).where(Storage.id == nas))
    assert "fk_assets_storage_id_storages" in str(info.value)


@pytest.mark.parametrize(
    ("facts", "constraint"),
    [
        ({"kind": "proxy"}, "ck_assets_kind_known"),
        ({"status": "done"}, "ck_assets_status_known"),
        ({"status": "error"}, "ck_assets_error_has_message"),
        ({"rel_path": "/media/a.mov"}, "ck_assets_rel_path_relative"),
        ({"rel_path": ""}, "ck_assets_rel_path_relative"),
        ({"storage_id": 987654321}, "fk_assets_storage_id_storages"),
        ({"size_bytes": -1}, "ck_assets_size_not_negative"),
        ({"width": 0, "height": 1080}, "ck_assets_dimensions_positive"),
        ({"sar_num": 0, "sar_den": 1}, "ck_assets_sar_positive"),
        ({"dar_num": 16, "dar_den": 0}, "ck_assets_dar_positive"),
        ({"frame_rate_num": 30000, "frame_rate_den": 0}, "ck_assets_frame_rate_positive"),
        ({"duration_s": -0.5}, "ck_assets_duration_not_negative"),
        ({"bit_depth": 0}, "ck_assets_bit_depth_range"),
        ({"rotation": 45}, "ck_assets_rotation_quarter_turns"),
        ({"root_id": 987654321}, "fk_assets_root_id_roots"),
    ],
)
def test_asset_checks(session: Session, nas: int, facts: dict[str, Any], constraint: str) -> None:
    values: dict[str, Any] = {"storage_id": nas, "rel_path": "media/x.mov"}
    values.update(facts)
    _rejected(session, Asset(**values), constraint)


def test_root_path_must_be_relative(session: Session, nas: int) -> None:
    _rejected(session, Root(storage_id=nas, rel_path="/media"), "ck_roots_rel_path_relative")


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"start_s": 2.0, "end_s": 1.0, "frame_s": 1.5}, "ck_segments_frame_in_span"),
        ({"start_s": 0.0, "end_s": 1.0, "frame_s": 3.0}, "ck_segments_frame_in_span"),
        ({"view": -1}, "ck_segments_view_not_negative"),
        ({"embedding_dim": 768}, "ck_segments_embedding_dim_matches"),
        ({"asset_id": 987654321}, "fk_segments_asset_id_assets"),
    ],
)
def test_segment_checks(session: Session, fields: dict[str, Any], constraint: str) -> None:
    master = _asset(session, "/media/s.mov")
    values: dict[str, Any] = dict(
        asset_id=master.id,
        start_s=0.0,
        end_s=2.0,
        frame_s=1.0,
        embedding=_unit(512),
        embedding_model="m",
        embedding_dim=512,
    )
    values.update(fields)
    _rejected(session, MomentView(**values), constraint)


def test_segment_identity_is_unique(session: Session) -> None:
    master = _asset(session, "/media/u.mov")
    fields: dict[str, Any] = dict(
        asset_id=master.id,
        start_s=0.0,
        end_s=2.0,
        frame_s=1.0,
        embedding=_unit(512),
        embedding_model="m",
        embedding_dim=512,
    )
    session.add(MomentView(**fields))
    session.flush()
    _rejected(session, MomentView(**fields), "uq_segments_asset_id_embedding_model_frame_s_view")


def test_segments_go_with_their_asset(session: Session) -> None:
    master = _asset(session, "/media/c.mov")
    session.add(
        MomentView(
            asset_id=master.id,
            start_s=0,
            end_s=1,
            frame_s=0,
            embedding=_unit(8),
            embedding_model="small",
            embedding_dim=8,
        )
    )
    session.flush()
    session.delete(master)
    session.flush()
    assert session.query(MomentView).filter_by(asset_id=master.id).count() == 0


def test_rendition_master_must_be_a_master(session: Session) -> None:
    not_a_master = _asset(session, "/renders/r.mov", kind="rendition")
    _rejected(session, _rendition(not_a_master), "fk_renditions_master_is_master")


def test_rendition_file_must_be_a_rendition(session: Session) -> None:
    master = _asset(session, "/media/m.mov")
    other_master = _asset(session, "/media/n.mov")
    _rejected(session, _rendition(master, rendition_asset_id=other_master.id), "fk_renditions_file_is_rendition")


def test_rendition_file_links_one_rendition(session: Session) -> None:
    master = _asset(session, "/media/o.mov")
    file = _asset(session, "/renders/o.4k.mov", kind="rendition")
    session.add(_rendition(master, rendition_asset_id=file.id))
    session.flush()
    _rejected(session, _rendition(master, rendition_asset_id=file.id), "uq_renditions_rendition_asset_id")


def _turn_into_rendition(session: Session, master: Asset) -> None:
    master.kind = "rendition"


@pytest.mark.parametrize("change", [_turn_into_rendition, Session.delete], ids=["become-rendition", "delete"])
def test_master_with_renditions_stays_a_master(session: Session, change: Callable[[Session, Asset], None]) -> None:
    master = _asset(session, "/media/k.mov")
    session.add(_rendition(master))
    session.flush()
    with pytest.raises(IntegrityError) as info, session.begin_nested():
        change(session, master)
        session.flush()
    assert "fk_renditions_master_is_master" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"status": "paused"}, "ck_renditions_status_known"),
        ({"target_width": 0}, "ck_renditions_target_positive"),
        ({"model_sha256": "not-a-hash"}, "ck_renditions_model_sha256_hex"),
        ({"progress": 1.5}, "ck_renditions_progress_fraction"),
        ({"attempts": -1}, "ck_renditions_attempts_not_negative"),
        ({"frames_done": 11, "frames_total": 10}, "ck_renditions_frames_done_range"),
        ({"status": "done", "progress": 1.0}, "ck_renditions_done_has_file"),
        ({"status": "failed"}, "ck_renditions_failed_has_error"),
        ({"master_kind": "rendition"}, "ck_renditions_master_kind_master"),
    ],
)
def test_rendition_checks(session: Session, fields: dict[str, Any], constraint: str) -> None:
    master = _asset(session, "/media/r.mov")
    _rejected(session, _rendition(master, **fields), constraint)
