"""The page served at ``/``: plain HTML, a vanilla script and a style sheet, with no external resources.

The page picks a bAbI task and one of its test stories (from ``/api/tasks`` and ``/api/stories``), or
takes a typed story, asks ``/answer`` and draws the attention as a heat map: one row per statement,
one column per hop, each cell shaded by its weight. Elements the tests drive have stable ids and
``data-testid`` attributes: ``task``, ``example``, ``story``, ``question``, ``ask``, ``error``,
``answer``, ``probability``, ``expected``, ``heatmap``.
"""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memjax: ask a memory network</title>
<link rel="stylesheet" href="static/page.css">
</head>
<body>
<header>
  <h1>memjax</h1>
  <p id="model" data-testid="model">Loading the model&hellip;</p>
</header>
<main>
  <section id="input" aria-label="Story and question">
    <div class="examples">
      <label>Task <select id="task" data-testid="task"></select></label>
      <label>Example <select id="example" data-testid="example">
        <option value="">type your own story</option>
      </select></label>
      <span id="examples-note" class="note"></span>
    </div>
    <form id="ask-form">
      <label for="story">Story: one statement per line, oldest first</label>
      <textarea id="story" data-testid="story" rows="10" spellcheck="false"
        placeholder="Mary went to the kitchen.&#10;John moved to the garden.&#10;Mary travelled to the office."></textarea>
      <label for="question">Question</label>
      <div class="ask-row">
        <input id="question" data-testid="question" type="text" autocomplete="off" placeholder="Where is Mary?">
        <button id="ask" data-testid="ask" type="submit">Ask</button>
      </div>
    </form>
    <p id="error" data-testid="error" class="error" role="alert" hidden></p>
  </section>
  <section id="result" data-testid="result" aria-live="polite" hidden>
    <p class="answer-line">Answer: <strong id="answer" data-testid="answer"></strong>
      <span id="probability" data-testid="probability"></span>
      <span id="expected" data-testid="expected"></span></p>
    <p id="top" class="note"></p>
    <p id="unknown" class="note" hidden></p>
    <table id="heatmap" data-testid="heatmap">
      <caption>Attention over the story, hop by hop (darker = more weight; bold = the hop's largest)</caption>
      <thead></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script src="static/page.js"></script>
</body>
</html>
"""

# what both pages' scripts share (the chat page's is in memjax.serve.chat_page): fetching JSON, errors, cells
COMMON_SCRIPT = r""""use strict";

const byId = (id) => document.getElementById(id);

async function getJSON(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    throw new Error("the server cannot be reached (" + e.message + ")");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    throw new Error((data && data.error) || ("the server answered HTTP " + response.status));
  }
  if (data === null) {
    throw new Error("the server's reply is not JSON");
  }
  return data;
}

function showError(message) {
  byId("error").textContent = message;
  byId("error").hidden = !message;
}

function cell(tag, text, className) {
  const c = document.createElement(tag);
  c.textContent = text;
  if (className) {
    c.className = className;
  }
  return c;
}

// a heat-map cell: the weight written and shaded (none: outside the model's memory)
function weightCell(weight, hop, strongest) {
  if (weight === undefined) {
    const c = cell("td", "\u2013", "weight outside");
    c.title = "outside the model's memory";
    return c;
  }
  const c = cell("td", weight.toFixed(2), "weight" + (strongest ? " strongest" : ""));
  c.dataset.hop = String(hop);
  c.dataset.weight = String(weight);
  c.style.backgroundColor = "rgba(29, 78, 216, " + Math.max(0, Math.min(1, weight)).toFixed(3) + ")";
  c.style.color = weight > 0.5 ? "#fff" : "#111";
  return c;
}
"""

SCRIPT = COMMON_SCRIPT + r"""
let examples = [];   // the selected task's example stories, as /api/stories gives them
let picked = null;   // the example question in the form, while the user has not changed it

async function loadModel() {
  const h = await getJSON("health");
  byId("model").textContent = "Model " + h.model + ": bAbI task(s) " + h.tasks.join(", ") +
    ", reads the last " + h.memory_size + " statements of a story.";
}

async function loadTasks() {
  const info = await getJSON("api/tasks");
  const select = byId("task");
  select.replaceChildren();
  for (const t of info.tasks) {
    select.add(new Option(t.task + ": " + t.name, String(t.task)));
  }
  if (!info.stories) {
    byId("example").disabled = true;
    byId("examples-note").textContent = "No bAbI data on the server: type a story.";
    return;
  }
  await loadStories();
}

async function loadStories() {
  const select = byId("example");
  select.replaceChildren(new Option("type your own story", ""));
  examples = [];
  picked = null;
  if (!byId("task").value) {
    return;
  }
  const data = await getJSON("api/stories?task=" + encodeURIComponent(byId("task").value));
  examples = data.stories;
  examples.forEach((story, s) => {
    const group = document.createElement("optgroup");
    group.label = "Story " + (s + 1);
    story.questions.forEach((q, k) => {
      group.appendChild(new Option(q.question + " (" + q.answer + ")", s + ":" + k));
    });
    select.appendChild(group);
  });
}

function pickExample() {
  picked = null;
  const value = byId("example").value;
  if (!value) {
    return;
  }
  const [s, k] = value.split(":").map(Number);
  const story = examples[s];
  const q = story.questions[k];
  byId("story").value = story.statements.slice(0, q.statements).join("\n");
  byId("question").value = q.question;
  picked = {story: byId("story").value, question: q.question, answer: q.answer, supporting: q.supporting};
}

function currentExample() {
  const unchanged = picked && picked.story === byId("story").value && picked.question === byId("question").value;
  return unchanged ? picked : null;
}

async function ask(event) {
  event.preventDefault();
  showError("");
  const statements = byId("story").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
  const example = currentExample();
  const button = byId("ask");
  button.disabled = true;
  button.textContent = "Thinking\u2026";
  byId("answer").textContent = "";
  try {
    const result = await getJSON("answer", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({story: statements, question: byId("question").value}),
    });
    showAnswer(statements, result, example);
  } catch (e) {
    byId("result").hidden = true;
    showError(e.message);
  } finally {
    button.disabled = false;
    button.textContent = "Ask";
  }
}

function showAnswer(statements, result, example) {
  byId("answer").textContent = result.answer;
  byId("probability").textContent = "(probability " + result.probability.toFixed(2) + ")";
  const expected = byId("expected");
  expected.textContent = example ?
    (example.answer === result.answer ? "right: bAbI says " : "wrong: bAbI says ") + example.answer : "";
  expected.className = example ? (example.answer === result.answer ? "right" : "wrong") : "";
  const others = result.top.slice(1).map((t) => t.word + " " + t.probability.toFixed(2));
  byId("top").textContent = others.length ? "Next most likely: " + others.join(", ") : "";
  const unknown = byId("unknown");
  unknown.textContent = "Words the model has never seen (" + (result.unknown_words_read ? "read by their context" : "ignored") +
    "): " + result.unknown_words.join(", ");
  unknown.hidden = result.unknown_words.length === 0;
  drawHeatmap(statements, result.hops, example ? example.supporting : [], result.attention);
  byId("result").hidden = false;
}

// what one column of the heat map is, by the kind of attention the model reports (Answer.attention)
const COLUMN_NAMES = {hop: "Hop", pass: "Pass", chosen: "Hop", words: "Attention", gate: "Layer", slots: "Slot"};

function drawHeatmap(statements, hops, supporting, attention) {
  const table = byId("heatmap");
  const head = document.createElement("tr");
  head.append(cell("th", "#"), cell("th", "Statement"));
  const name = COLUMN_NAMES[attention] || "Hop";
  hops.forEach((_, h) => head.appendChild(cell("th", hops.length > 1 || name !== "Attention" ? name + " " + (h + 1) : name)));
  table.tHead.replaceChildren(head);
  const weights = hops.map((hop) => new Map(hop.map((r) => [r.index, r.weight])));
  const strongest = hops.map((hop) => (hop.length ? hop[0].index : -1));
  const rows = statements.map((text, i) => {
    const row = document.createElement("tr");
    row.dataset.index = String(i);
    if (supporting.includes(i)) {
      row.className = "supporting";
      row.title = "a supporting fact of this bAbI question";
    }
    row.append(cell("td", String(i + 1), "index"), cell("td", text, "statement"));
    weights.forEach((byIndex, h) => row.appendChild(weightCell(byIndex.get(i), h, strongest[h] === i)));
    return row;
  });
  table.tBodies[0].replaceChildren(...rows);
}

async function start() {
  byId("ask-form").addEventListener("submit", ask);
  byId("task").addEventListener("change", () => loadStories().catch((e) => showError(e.message)));
  byId("example").addEventListener("change", pickExample);
  try {
    await loadModel();
    await loadTasks();
  } catch (e) {
    showError(e.message);
  }
}

start();
"""

STYLE = """body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem; color: #111; }
header h1 { margin-bottom: 0.2rem; }
.note { color: #555; }
.examples { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin-bottom: 1rem; }
.examples select { max-width: 28rem; }
form label { display: block; font-weight: 600; margin: 0.6rem 0 0.3rem; }
textarea, input[type=text] { width: 100%; box-sizing: border-box; font: inherit; padding: 0.4rem; }
.ask-row { display: flex; gap: 0.5rem; }
button { font: inherit; padding: 0.4rem 1.2rem; cursor: pointer; }
.error { color: #b91c1c; background: #fef2f2; border: 1px solid #fecaca; padding: 0.5rem; }
.answer-line { font-size: 1.3rem; }
.right { color: #15803d; }
.wrong { color: #b91c1c; }
table { border-collapse: collapse; margin-top: 0.5rem; }
caption { text-align: left; color: #555; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; }
td.weight { text-align: right; font-variant-numeric: tabular-nums; min-width: 3.5rem; }
td.strongest { font-weight: 700; }
td.outside { color: #999; text-align: center; }
tr.supporting td.statement { font-weight: 600; }
tr.supporting td.statement::after { content: " \\2605"; color: #b45309; }
"""
