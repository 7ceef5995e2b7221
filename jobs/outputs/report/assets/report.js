// The report's explorer: filters and renders the scenarios of the JSON block.
// Every string in the data is untrusted model output: it is only ever set with
// textContent or as an option's text, never parsed as HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fillSelect(select, values) {
    for (const v of values) {
      const opt = document.createElement("option");
      opt.value = v;
      opt.textContent = v;
      select.appendChild(opt);
    }
  }

  function haystack(s) {
    const parts = [s.id, s.query, s.value1, s.value2];
    for (const r of s.responses) parts.push(r.model, r.text);
    return parts.filter(Boolean).join("\n").toLowerCase();
  }

  function rubricTable(s) {
    const t = el("table", "rubric");
    t.appendChild(el("caption", null, "Rubric"));
    const head = el("tr");
    for (const h of ["position", "value 1: " + (s.value1 || ""), "value 2: " + (s.value2 || "")]) head.appendChild(el("th", null, h));
    t.appendChild(head);
    const v1 = s.rubric.value1 || [], v2 = s.rubric.value2 || [];
    for (let i = 0; i < Math.max(v1.length, v2.length); i++) {
      const tr = el("tr");
      tr.appendChild(el("td", null, i));
      tr.appendChild(el("td", null, v1[i] || ""));
      tr.appendChild(el("td", null, v2[i] || ""));
      t.appendChild(tr);
    }
    return t;
  }

  function responseCard(r) {
    const card = el("div", "response");
    card.dataset.model = r.model;
    const h = el("h4", null, r.model);
    if (r.outlier) h.appendChild(el("span", "outlier", " outlier"));
    card.appendChild(h);
    const pos = (p) => (p === undefined || p === null ? "–" : p);
    card.appendChild(el("div", "positions", "position value 1: " + pos(r.position1) + " · value 2: " + pos(r.position2)));
    if (r.status && r.status !== "ok") card.appendChild(el("div", "error", "status " + r.status + ": " + (r.error || "")));
    const verdicts = el("div", "verdicts");
    for (const v of r.refusals) verdicts.appendChild(el("div", null, "refusal (" + v.judge + "): " + (v.category || v.status)));
    if (r.majority) verdicts.appendChild(el("div", null, "compliance majority: " + r.majority));
    for (const v of r.compliance) {
      const d = el("div", null, "compliance (" + v.judge + "): " + (v.decision || v.status));
      if (v.reasoning) d.title = v.reasoning;
      verdicts.appendChild(d);
    }
    if (r.values.length) {
      const vals = el("div", null, "values: ");
      for (const v of r.values) vals.appendChild(el("span", "tag", v.phrase + (v.category ? " → " + v.category : "")));
      verdicts.appendChild(vals);
    }
    card.appendChild(verdicts);
    card.appendChild(el("div", "text", r.text));
    if (r.full_length) card.appendChild(el("div", "note", "cut at " + data.max_chars + " of " + r.full_length + " characters"));
    return card;
  }

  function detail(s) {
    const box = el("div", "detail");
    box.appendChild(el("div", "query", s.query));
    const meta = el("div", "meta");
    meta.appendChild(el("span", "tag", "nudge: " + (s.nudge || "")));
    meta.appendChild(el("span", "tag", "generator: " + (s.generator || "")));
    for (const p of s.picks) meta.appendChild(el("span", "tag", "selected in " + p.subset + " #" + (p.rank + 1) + " (D=" + p.d.toFixed(2) + ")"));
    for (const t of s.topics) meta.appendChild(el("span", "tag", "topic: " + t));
    for (const c of s.categories) meta.appendChild(el("span", "tag", "category: " + c));
    box.appendChild(meta);
    box.appendChild(rubricTable(s));
    const grid = el("div", "responses");
    for (const r of s.responses) grid.appendChild(responseCard(r));
    box.appendChild(grid);
    return box;
  }

  function card(s) {
    const d = el("details", "scenario");
    d.dataset.id = s.id;
    d.id = "scenario-" + s.id;
    const sum = el("summary");
    sum.appendChild(el("strong", null, "D=" + (s.d_max === null ? "?" : s.d_max.toFixed(2)) + " "));
    sum.appendChild(el("span", null, (s.value1 || "?") + " vs " + (s.value2 || "?") + ": "));
    sum.appendChild(el("span", "snippet", (s.query || "").slice(0, 140)));
    d.appendChild(sum);
    d.addEventListener("toggle", () => {
      if (d.open && d.childElementCount === 1) d.appendChild(detail(s));
    });
    return d;
  }

  const search = $("filter-search"), subset = $("filter-subset"), topic = $("filter-topic"), category = $("filter-category");
  fillSelect(subset, data.subsets);
  fillSelect(topic, data.topics);
  fillSelect(category, data.categories);
  const items = data.scenarios.map((s) => ({ s: s, text: haystack(s), node: card(s) }));
  const list = $("scenario-list");
  for (const it of items) list.appendChild(it.node);

  function apply() {
    const q = search.value.trim().toLowerCase();
    let shown = 0;
    for (const it of items) {
      const ok =
        (!q || it.text.includes(q)) &&
        (!subset.value || it.s.picks.some((p) => p.subset === subset.value)) &&
        (!topic.value || it.s.topics.includes(topic.value)) &&
        (!category.value || it.s.categories.includes(category.value));
      it.node.hidden = !ok;
      if (ok) shown++;
    }
    $("scenario-count").textContent = shown + " of " + items.length + " scenarios";
  }
  for (const c of [search, subset, topic, category]) c.addEventListener("input", apply);
  apply();

  // A link to #scenario-<id> (the findings list them) opens that scenario, shown whatever the filters.
  function openLinked() {
    const node = location.hash.startsWith("#scenario-") ? document.getElementById(location.hash.slice(1)) : null;
    if (!node) return;
    node.hidden = false;
    node.open = true;
    node.scrollIntoView();
  }
  window.addEventListener("hashchange", openLinked);
  openLinked();
})();
