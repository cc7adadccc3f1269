// The search grid: the same /api/search the CLI uses, moments shown as thumbnails.
"use strict";

const form = document.getElementById("search");
const results = document.getElementById("results");
const statusLine = document.getElementById("status");

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child); // text goes in as text, never as markup
  return node;
}

function size(version) {
  return version.width && version.height ? `${version.width}x${version.height}` : "";
}

function versionOf(hit, moment) {
  if (moment.path === hit.master.path) return hit.master;
  return hit.renditions.find((r) => r.path === moment.path) || hit.master;
}

function momentView(hit, moment) {
  const version = versionOf(hit, moment);
  const picture = moment.thumbnail
    ? element("img", {
        src: `/api/thumbnails/${moment.asset_id}/${Math.round(moment.frame_s * 1000)}`,
        alt: `${moment.path} at ${moment.timecode || moment.frame_s.toFixed(2) + " s"}`,
        loading: "lazy",
      })
    : element("div", { class: "none" }, "no thumbnail");
  const caption = element(
    "figcaption",
    {},
    element("span", { class: "timecode" }, moment.timecode || `${moment.frame_s.toFixed(1)} s`),
    element("span", { class: "score" }, moment.score.toFixed(3)),
    element("span", { class: version.kind === "rendition" ? "ai" : "" }, version.kind === "rendition" ? `AI ${size(version)}` : size(version)),
  );
  const frameMs = Math.round(moment.frame_s * 1000);
  const link = element("a", { href: `#family/${hit.master.asset_id}/${frameMs}` }, picture);
  const choose = element("input", { type: "checkbox", class: "choose", value: `${moment.asset_id}@${frameMs}`, title: "Choose for the export" });
  caption.prepend(choose);
  return element("figure", { class: "moment" }, link, caption);
}

function hitView(hit) {
  const ai = hit.renditions.filter((r) => r.status === "indexed").length;
  const heading = element(
    "h2",
    {},
    element("span", { class: "rank" }, `#${hit.rank}`),
    element("span", { class: "path" }, hit.master.path || "(no master file)"),
    element("span", { class: "facts" }, [size(hit.master), hit.master.display_aspect_ratio, hit.master.status].filter(Boolean).join(" · ")),
  );
  if (ai) heading.append(element("span", { class: "badge", title: "AI-upscaled renditions" }, `AI x${ai}`));
  const evidence = hit.evidence && hit.evidence.words.length
    ? element("p", { class: "evidence" }, `words: ${hit.evidence.words.join(", ")}${hit.evidence.named ? " (in its name)" : ""}`)
    : "";
  const moments = element("div", { class: "moments" }, ...hit.moments.map((m) => momentView(hit, m)));
  return element("article", { class: "hit" }, heading, evidence, moments, notesView(hit.master.asset_id, hit.annotations || []));
}

// ---- notes and tags on an asset, selections of moments: shared through the catalog ----

function writer() {
  return document.getElementById("author").value.trim();
}

async function change(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ ...body, author: writer() }),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function annotationList(list, annotations, assetId) {
  list.replaceChildren(...annotations.map((a) => {
    const when = a.at_s === null ? "" : ` @${a.at_s.toFixed(1)} s`;
    const item = element("li", { class: a.kind }, `${a.kind === "tag" ? "#" : ""}${a.text}${when} — ${a.author}, ${a.created_at.slice(0, 16).replace("T", " ")}`);
    const remove = element("button", { type: "button", class: a.kind === "tag" ? "untag" : "unnote", title: `Remove this ${a.kind}` }, "×");
    remove.addEventListener("click", async () => {
      const what = a.kind === "tag" ? { at_s: a.at_s, untag: [a.text] } : { unnote: a.id };
      const answer = await change("/api/annotations", { asset_id: assetId, ...what });
      annotationList(list, answer.annotations, assetId);
    });
    item.append(" ", remove);
    return item;
  }));
}

function notesView(assetId, annotations) {
  const list = element("ul", { class: "annotations" });
  annotationList(list, annotations, assetId);
  const text = element("input", { type: "text", class: "note-text", placeholder: "note, or #tag #tag", "aria-label": "Note or tags" });
  const state = element("span", { class: "note-status", role: "status" });
  const add = element("form", { class: "note-form" }, text, element("button", { type: "submit" }, "Add"), state);
  const box = element("details", { class: "notes" }, element("summary", {}, `notes and tags (${annotations.length})`), list, add);
  add.addEventListener("submit", async (event) => {
    event.preventDefault();
    const words = text.value.trim().split(/\s+/);
    const tags = words.every((w) => w.startsWith("#")) ? words.map((w) => w.slice(1)).filter(Boolean) : null;
    try {
      const answer = await change("/api/annotations", tags ? { asset_id: assetId, tags } : { asset_id: assetId, note: text.value });
      annotationList(list, answer.annotations, assetId);
      text.value = "";
      state.textContent = "Saved.";
    } catch (error) {
      state.textContent = `Error: ${error.message}`;
    }
  });
  return box;
}

const selectionName = document.getElementById("selection-name");

async function addChosen() {
  const chosen = [...document.querySelectorAll(".choose:checked")].map((box) => box.value);
  const name = selectionName.value.trim();
  if (!name || !chosen.length) {
    statusLine.textContent = "Tick moments and name a selection first.";
    return;
  }
  try {
    const answer = await change("/api/selections", { name, add: chosen });
    statusLine.textContent = `Added ${answer.added} to selection “${name}” (${answer.entries.length} in it).`;
  } catch (error) {
    statusLine.textContent = `Error: ${error.message}`;
  }
}

async function listSelections() {
  const answer = await (await fetch("/api/selections")).json();
  const items = answer.selections.map((s) => {
    const open = element("a", { href: `#selection/${encodeURIComponent(s.name)}`, class: "open-selection" }, s.name);
    return element("li", {}, open, ` — ${s.entries} entr${s.entries === 1 ? "y" : "ies"}, by ${s.author}`);
  });
  statusLine.replaceChildren(items.length ? "Selections:" : "No selections yet.");
  results.replaceChildren(element("ul", { class: "selections" }, ...items));
}

async function openSelection(name) {
  family.hidden = true;
  results.hidden = false;
  statusLine.hidden = false;
  const response = await fetch(`/api/selections/${encodeURIComponent(name)}`);
  const answer = await response.json();
  if (!response.ok) {
    statusLine.textContent = `Error: ${answer.error}`;
    return;
  }
  const positions = answer.entries.map((e) => e.position);
  const move = async (from, by) => {
    const order = [...positions];
    const [moved] = order.splice(from, 1);
    order.splice(from + by, 0, moved);
    await change("/api/selections", { name, order });
    openSelection(name);
  };
  const views = answer.results.map((hit, i) => {
    const view = hitView(hit);
    const up = element("button", { type: "button", class: "move-up", title: "Earlier" }, "↑");
    const down = element("button", { type: "button", class: "move-down", title: "Later" }, "↓");
    up.disabled = i === 0;
    down.disabled = i === answer.results.length - 1;
    up.addEventListener("click", () => move(i, -1));
    down.addEventListener("click", () => move(i, 1));
    view.querySelector("h2").append(up, down);
    return view;
  });
  results.replaceChildren(...views);
  const links = ["edl", "otio", "csv"].map((format) =>
    element("a", { href: `/api/export?format=${format}&selection=${encodeURIComponent(name)}`, download: "", class: `export-${format}` }, format.toUpperCase()));
  statusLine.replaceChildren(`Selection “${name}”: ${views.length} entr${views.length === 1 ? "y" : "ies"} · export: `, ...links.flatMap((a, i) => (i ? [" ", a] : [a])));
}

document.getElementById("add-to-selection").addEventListener("click", addChosen);
document.getElementById("show-selections").addEventListener("click", listSelections);

function filters() {
  const data = new FormData(form);
  const params = new URLSearchParams({ moments: "4", limit: "20", kind: data.get("kind") });
  if (data.get("has_rendition")) params.set("has_rendition", "true");
  for (const name of ["min_height", "max_height", "under", "since"]) {
    if (data.get(name)) params.set(name, data.get(name));
  }
  if (data.get("exact")) params.set("exact", "true");
  return params;
}

async function show(response, what, exportParams) {
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  results.replaceChildren(...answer.results.map(hitView));
  const n = answer.results.length;
  statusLine.replaceChildren(n ? `${n} result${n === 1 ? "" : "s"} for ${what}` : answer.hint || "No matching footage.");
  if (n && exportParams) {
    // The same search as an edit list, from the service (`footage search --export`).
    const links = ["edl", "otio", "csv"].map((format) => {
      const link = element("a", { href: `/api/export?format=${format}&${exportParams}`, download: "", class: `export-${format}` }, format.toUpperCase());
      link.addEventListener("click", () => {
        // Only the moments chosen, when any is; else every moment shown.
        const chosen = [...document.querySelectorAll(".choose:checked")].map((box) => box.value);
        link.href = `/api/export?format=${format}&${exportParams}` + (chosen.length ? `&only=${chosen.join(",")}` : "");
      });
      return link;
    });
    statusLine.append(element("span", { class: "exports" }, " · export: ", ...links.flatMap((a, i) => (i ? [" ", a] : [a]))));
  }
}

async function search(event) {
  event.preventDefault();
  const params = filters();
  params.set("q", new FormData(form).get("q"));
  statusLine.textContent = "Searching…";
  results.replaceChildren();
  try {
    await show(await fetch(`/api/search?${params}`), `“${params.get("q")}”`, params.toString());
  } catch (error) {
    statusLine.textContent = `Error: ${error.message}`;
  }
}

async function searchPicture(file) {
  // Query by example: the picture goes as the body; nothing of it is kept.
  if (location.hash) history.pushState(null, "", location.pathname);
  route();
  statusLine.textContent = `Searching for moments like ${file.name}…`;
  results.replaceChildren();
  try {
    await show(await fetch(`/api/search/image?${filters()}`, { method: "POST", body: file }), `moments like ${file.name}`, null);
  } catch (error) {
    statusLine.textContent = `Error: ${error.message}`;
  }
}

const drop = document.getElementById("drop");
const picture = document.getElementById("picture");
picture.addEventListener("change", () => picture.files[0] && searchPicture(picture.files[0]));
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) searchPicture(event.dataTransfer.files[0]);
});

// ---- a family: the master's facts and moments, and each version at one moment side by side ----

const family = document.getElementById("family");
let lastResults = [];

function versionLabel(version) {
  // What sets a version apart from its siblings: model, target, temporal stage, codec, when.
  if (version.kind !== "rendition") return `master · ${size(version)}${version.video_codec ? " · " + version.video_codec : ""}`;
  const made = version.rendition;
  if (!made) return `AI-upscaled · ${size(version)}`;
  const temporal = made.parameters && made.parameters.temporal;
  const when = made.finished_at || made.requested_at;
  const parts = [
    made.model_name,
    made.label !== size(version) ? made.label : "",
    temporal ? (temporal.enabled ? `temporal ${temporal.strength ?? "on"}` : "frame by frame") : "",
    version.video_codec || (made.parameters && made.parameters.codec) || "",
    when ? when.slice(5, 16).replace("T", " ") : "",
  ];
  return `AI-upscaled · ${size(version)} · ${parts.filter(Boolean).join(" · ")}`;
}

function provenance(version) {
  // Who made the rendition and how, from its recorded provenance.
  const made = version.rendition;
  if (!made) return "";
  const temporal = made.parameters && made.parameters.temporal;
  const parts = made.model_name === "external"
    ? ["made by another tool, linked to its master"]
    : [
        made.model_sha256 ? `weights sha256 ${made.model_sha256.slice(0, 12)}…` : "",
        temporal ? `temporal stage ${temporal.enabled ? "on" : "off"}` : "",
      ];
  parts.push(made.finished_at ? `finished ${made.finished_at.slice(0, 16).replace("T", " ")}` : "");
  return parts.filter(Boolean).join(" · ");
}

function credentials(version) {
  // The state recorded when the file was signed, and a link that reads the file itself now.
  const state = (version.rendition && version.rendition.credentials) || "none recorded";
  const words = element("div", { class: "credentials-words" });
  const link = element("a", { href: "#", class: "credentials-link" }, "what they say");
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    const response = await fetch(`/api/credentials/${version.asset_id}`);
    const found = await response.json();
    if (!response.ok) {
      words.replaceChildren(element("p", {}, `Error: ${found.error}`));
      return;
    }
    words.replaceChildren(
      element("p", { class: `verdict ${found.state}` }, found.summary),
      element("ul", {}, ...found.chain.map((line) => element("li", {}, line))),
    );
  });
  return element("p", { class: "credentials" }, `Content Credentials: ${state} · `, link, words);
}

function frameOf(version, frameMs) {
  return element("img", { src: `/api/frames/${version.asset_id}/${frameMs}`, alt: `${version.path} at ${frameMs / 1000} s` });
}

function wipe(versions, frameMs) {
  // Any two versions: the right one at 1:1 over the left one scaled to its size; the slider
  // moves the edge. By default the master under the first rendition.
  const choice = (id, chosen) =>
    element("select", { id, "aria-label": id === "wipe-left" ? "Under the edge" : "Over the edge" },
      ...versions.map((v, i) => {
        const option = element("option", { value: String(i) }, `${i + 1}. ${versionLabel(v)}`);
        option.selected = i === chosen;
        return option;
      }));
  const left = choice("wipe-left", 0);
  const right = choice("wipe-right", 1);
  const slider = element("input", { type: "range", min: "0", max: "100", value: "50", id: "wipe-position", "aria-label": "Wipe position" });
  const stage = element("div", { class: "stage" });
  const caption = element("p", { class: "caption" });
  const show = () => {
    const under = versions[Number(left.value)];
    const over = versions[Number(right.value)];
    const width = Math.min(over.width, 640);
    const height = Math.min(over.height, 360);
    const offset = `translate(${-(over.width - width) / 2}px, ${-(over.height - height) / 2}px)`;
    const below = frameOf(under, frameMs);
    below.className = "under";
    below.style.width = `${over.width}px`;
    below.style.height = `${over.height}px`;
    below.style.transform = offset;
    const above = frameOf(over, frameMs);
    above.className = "over";
    above.style.transform = offset;
    const place = () => {
      // The edge moves across the visible region, whatever part of a large frame that is.
      const edge = (over.width - width) / 2 + (slider.value / 100) * width;
      above.style.clipPath = `inset(0 ${over.width - edge}px 0 0)`;
    };
    slider.oninput = place;
    place();
    stage.replaceChildren(below, above);
    stage.style.width = `${width}px`;
    stage.style.height = `${height}px`;
    const made = (v) => (v.kind === "rendition" ? `AI-upscaled by ${v.rendition ? v.rendition.model_name : "another tool"}` : "the master");
    caption.textContent = `Left of the edge: ${made(over)} (${versionLabel(over)}). Right: ${made(under)} scaled to it. Both at ${size(over)}, 1:1.`;
  };
  left.addEventListener("change", show);
  right.addEventListener("change", show);
  show();
  return element("section", { class: "wipe" }, element("h3", {}, "Wipe"), element("div", { class: "wipe-choice" }, left, " under ", right), stage, slider, caption);
}

async function showFamily(assetId, frameMs) {
  results.hidden = true;
  statusLine.hidden = true;
  family.hidden = false;
  family.replaceChildren(element("p", {}, "Loading…"));
  const response = await fetch(`/api/assets/${assetId}`);
  const details = await response.json();
  if (!response.ok) {
    family.replaceChildren(element("p", {}, `Error: ${details.error}`));
    return;
  }
  const master = details.master;
  const facts = details.asset;
  const moments = Object.values(details.moments_by_model)[0] || [];
  const strip = element(
    "div",
    { class: "strip" },
    ...moments.map((m) => {
      const ms = Math.round(m.frame_s * 1000);
      return element(
        "a",
        { href: `#family/${assetId}/${ms}`, class: ms === frameMs ? "chosen" : "" },
        m.thumbnail ? element("img", { src: `/api/thumbnails/${assetId}/${ms}`, alt: `moment at ${m.frame_s} s` }) : `${m.frame_s.toFixed(1)} s`,
      );
    }),
  );
  // Hovering the strip scrubs through the moments: their frames, large, with their time.
  const scrub = element("figure", { class: "scrub", hidden: "" }, element("img", { alt: "" }), element("figcaption", {}));
  strip.addEventListener("mouseover", (event) => {
    const picture = event.target.closest("img");
    if (!picture) return;
    scrub.hidden = false;
    scrub.querySelector("img").src = picture.src;
    scrub.querySelector("figcaption").textContent = picture.alt;
  });
  strip.addEventListener("mouseleave", () => {
    scrub.hidden = true;
  });
  const versions = [master, ...details.renditions.filter((r) => r.asset_id && r.status === "indexed")];
  const pairs = element(
    "div",
    { class: "pairs" },
    ...versions.map((v) =>
      element(
        "figure",
        { class: `version ${v.kind}` },
        frameOf(v, frameMs),
        element("figcaption", {}, versionLabel(v), " ", playButton(v, frameMs)),
        ...(v.kind === "rendition" ? [element("p", { class: "provenance" }, provenance(v)), credentials(v)] : []),
      ),
    ),
  );
  const parts = [
    element("a", { href: "#", class: "back" }, "← results"),
    element("h2", {}, element("span", { class: "path" }, master.path || ""), element("span", { class: "facts" }, [size(master), facts.video_codec, facts.duration_s ? `${facts.duration_s.toFixed(1)} s` : "", master.frame_rate ? `${master.frame_rate} fps` : ""].filter(Boolean).join(" · "))),
    strip,
    scrub,
    element("h3", {}, `At ${(frameMs / 1000).toFixed(2)} s`),
    pairs,
  ];
  if (versions.length > 1) parts.push(wipe(versions, frameMs));
  parts.push(requestForm(assetId));
  family.replaceChildren(...parts);
}

// What each codec the catalog names is asked of the browser as (canPlayType).
const PLAYABLE_TYPES = {
  h264: 'video/mp4; codecs="avc1.640028"',
  vp9: 'video/webm; codecs="vp9"',
  vp8: 'video/webm; codecs="vp8"',
  av1: 'video/mp4; codecs="av01.0.05M.08"',
};

function browserDecodes(version) {
  // The catalog's word (what the tested browsers play) and this browser's own.
  const type = PLAYABLE_TYPES[version.video_codec];
  return version.browser_plays !== false && Boolean(type) && document.createElement("video").canPlayType(type) !== "";
}

function timecodeAt(version, seconds) {
  // The version's own timecode at a time into it: its first frame's timecode plus the frames
  // since, counted as catalog/timecode.py counts search's timecodes, so the two agree: 29.97
  // and 59.94 drop frame numbers 00 and 01 (00-03) each minute but every tenth, unless the
  // file's own timecode is non-drop (':' before the frames).
  if (!version.timecode || !version.frame_rate) return null;
  const [num, den] = version.frame_rate.split("/").map(Number);
  const rate = den ? num / den : num;
  const nominal = Math.round(rate);
  const parts = /^(\d{1,2}):(\d{2}):(\d{2})([:;.])(\d{2,3})$/.exec(version.timecode.trim());
  if (!parts || !nominal) return null;
  const [hours, minutes, secs, ff] = [1, 2, 3, 5].map((i) => Number(parts[i]));
  const dropped = den === 1001 && (num === 30000 || num === 60000) && parts[4] !== ":" ? 2 * Math.floor(nominal / 30) : 0;
  const allMinutes = hours * 60 + minutes;
  let frame = (allMinutes * 60 + secs) * nominal + ff - dropped * (allMinutes - Math.floor(allMinutes / 10));
  frame += Math.floor(seconds * rate + 1e-6);
  if (dropped) {
    // Back from a frame count to a label: add the numbers skipped before it.
    const perTen = nominal * 600 - dropped * 9;
    const perMinute = nominal * 60 - dropped;
    const rest = frame % perTen;
    frame += dropped * 9 * Math.floor(frame / perTen) + (rest > dropped ? dropped * Math.floor((rest - dropped) / perMinute) : 0);
  }
  const label = Math.floor(frame / nominal);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(Math.floor(label / 3600) % 24)}:${two(Math.floor(label / 60) % 60)}:${two(label % 60)}${dropped ? ";" : ":"}${two(frame % nominal)}`;
}

function playButton(version, frameMs) {
  // Plays the version itself where this browser decodes it, else its proxy, from the moment.
  const button = element("button", { type: "button", class: "play" }, "▶ play");
  button.addEventListener("click", () => {
    const box = element("div", { class: "player-box" });
    button.replaceWith(box);
    play(box, version, frameMs, browserDecodes(version) ? "original" : "proxy");
  });
  return button;
}

function hasProxy(version) {
  return Boolean(version.proxy && version.proxy.status === "done");
}

function play(box, version, frameMs, which) {
  if (which === "proxy" && !hasProxy(version)) {
    cannotPlay(box, version);
    return;
  }
  const url = which === "original" ? `/api/media/${version.asset_id}` : `/api/proxies/${version.asset_id}`;
  const video = element("video", { controls: "", src: `${url}#t=${frameMs / 1000}`, class: "player", "data-source": which });
  video.muted = true;
  let fellBack = false;
  const fallBack = () => {
    if (fellBack) return;
    fellBack = true;
    if (which === "original") play(box, version, frameMs, "proxy");
    else cannotPlay(box, version);
  };
  video.addEventListener("error", fallBack);
  // Chromium "plays" some files whose video it cannot decode (HEVC): the audio runs, the
  // picture stays black, and no error comes; only the missing picture size tells.
  video.addEventListener("loadeddata", () => {
    if (video.videoWidth === 0) fallBack();
  });
  const tc = element("span", { class: "timecode" });
  video.addEventListener("timeupdate", () => {
    tc.textContent = timecodeAt(version, video.currentTime) || `${video.currentTime.toFixed(2)} s`;
  });
  const what = which === "proxy" ? `proxy ${version.proxy.width}x${version.proxy.height}${version.proxy.ai_processed ? " (AI-processed)" : ""}` : "original";
  box.replaceChildren(video, element("p", { class: "player-facts" }, element("span", { class: "playing" }, `playing the ${what}`), " · ", tc));
  video.play().catch(() => {}); // a refused autoplay still leaves the controls
}

function cannotPlay(box, version) {
  // Says why, and offers what would make it playable.
  const codec = version.video_codec || "this file";
  const proxy = version.proxy;
  const why = element("p", { class: "cannot-play" });
  if (proxy && ["queued", "running"].includes(proxy.status)) {
    why.textContent = `This browser cannot play ${codec}; its proxy is being made (${proxy.status}). The frames above show it.`;
    box.replaceChildren(why);
    return;
  }
  why.textContent = `This browser cannot play ${codec}${proxy && proxy.error ? `; its proxy failed: ${proxy.error}` : ", and this version has no proxy yet"}.`;
  const make = element("button", { type: "button", class: "make-proxy" }, "Make a proxy");
  const state = element("span", { class: "proxy-status", role: "status" });
  make.addEventListener("click", async () => {
    state.textContent = "Asking…";
    const response = await fetch("/api/proxies", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ asset: version.asset_id }),
    });
    const answer = await response.json();
    state.textContent = response.ok ? `Proxy ${answer.status}: a render worker makes it; play again when it is done.` : `Error: ${answer.error}`;
    if (response.ok) make.disabled = true;
  });
  box.replaceChildren(why, make, " ", state);
}

// ---- request a rendition and watch its job ----

const token = document.querySelector('meta[name="footage-token"]').content;

function requestForm(assetId) {
  const target = element("select", { name: "target", id: "request-target" },
    ...["4k", "1440p", "1080p", "2x"].map((t) => element("option", { value: t }, t)));
  const model = element("input", { name: "model", id: "request-model", list: "presets", placeholder: "live-action-fast" });
  const presets = element("datalist", { id: "presets" },
    ...["live-action-fast", "live-action-quality", "animation", "2x"].map((p) => element("option", { value: p })));
  const temporal = element("input", { type: "checkbox", name: "temporal", id: "request-temporal", checked: "" });
  const progress = element("progress", { id: "request-progress", max: "1", value: "0", hidden: "" });
  const state = element("span", { id: "request-status", role: "status" });
  const form = element("form", { id: "request" },
    element("label", {}, "Target ", target), element("label", {}, "Model ", model), presets,
    element("label", {}, temporal, " temporal stage"), element("button", { type: "submit" }, "Request rendition"), progress, state);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    state.textContent = "Requesting…";
    const response = await fetch("/api/renditions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ asset: assetId, target: target.value, model: model.value || null, temporal: temporal.checked }),
    });
    const answer = await response.json();
    if (!response.ok) {
      state.textContent = `Error: ${answer.error}`;
      return;
    }
    progress.hidden = false;
    follow(assetId, answer.rendition_id, progress, state);
  });
  return element("section", { class: "request" }, element("h3", {}, "Request an AI-upscaled rendition"), form);
}

async function follow(assetId, renditionId, progress, state) {
  // The rendition's own record, as `footage pairs` shows it, until its job ends.
  const response = await fetch(`/api/assets/${assetId}`);
  const details = await response.json();
  const made = details.renditions.map((r) => r.rendition).find((r) => r && r.rendition_id === renditionId);
  if (made) {
    progress.value = made.status === "done" ? 1 : made.progress;
    state.textContent = `Rendition ${renditionId}: ${made.status}${made.error ? " (" + made.error + ")" : ""}`;
    if (["done", "failed", "cancelled"].includes(made.status)) return;
  }
  setTimeout(() => follow(assetId, renditionId, progress, state), 1000);
}

function route() {
  const match = location.hash.match(/^#family\/(\d+)\/(\d+)$/);
  const chosen = location.hash.match(/^#selection\/(.+)$/);
  if (match) {
    showFamily(Number(match[1]), Number(match[2]));
  } else if (chosen) {
    openSelection(decodeURIComponent(chosen[1]));
  } else {
    family.hidden = true;
    results.hidden = false;
    statusLine.hidden = false;
  }
}

form.addEventListener("submit", (event) => {
  if (location.hash) history.pushState(null, "", location.pathname);
  route();
  search(event);
});
window.addEventListener("hashchange", route);
route(); // a family's address opened directly
