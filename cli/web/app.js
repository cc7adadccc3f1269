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
  return element("figure", { class: "moment" }, picture, caption);
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
  const moments = element("div", { class: "moments" }, ...hit.moments.map((m) => momentView(hit, m)));
  return element("article", { class: "hit" }, heading, moments);
}

async function search(event) {
  event.preventDefault();
  const data = new FormData(form);
  const params = new URLSearchParams({ q: data.get("q"), moments: "4", limit: "20", kind: data.get("kind") });
  if (data.get("has_rendition")) params.set("has_rendition", "true");
  if (data.get("min_height")) params.set("min_height", data.get("min_height"));
  statusLine.textContent = "Searching…";
  results.replaceChildren();
  try {
    const response = await fetch(`/api/search?${params}`);
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    results.replaceChildren(...answer.results.map(hitView));
    statusLine.textContent = answer.results.length
      ? `${answer.results.length} results for “${answer.query.text}”`
      : answer.hint || "No matching footage.";
  } catch (error) {
    statusLine.textContent = `Error: ${error.message}`;
  }
}

form.addEventListener("submit", search);
