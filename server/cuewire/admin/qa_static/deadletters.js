/* The dead letters of the outboxes (deadletters.py): a table per channel, a "retry" button per
 * letter. Everything from a job (URLs, codes) is shown as text (textContent), never as HTML. */
const $ = (id) => document.getElementById(id);

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
  return td;
}

async function retry(channel, id) {
  const answer = await fetch("/qa/deadletters/retry", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ channel, id }),
  });
  $("status").textContent = answer.ok ? `queued ${id} again` : `could not retry ${id}`;
  await load();
}

function table(channel, info) {
  const section = document.createElement("section");
  section.className = "card";
  const title = document.createElement("h3");
  const d = info.depth;
  title.textContent = `${channel}: ${info.letters.length} dead, ${d.queued} queued, ${d.due} waiting to retry`;
  section.append(title);
  const grid = document.createElement("table");
  const head = grid.createTHead().insertRow();
  for (const name of ["When", "Id", "Code", "Detail", "Attempts", "To", ""]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.append(th);
  }
  const body = grid.createTBody();
  for (const letter of info.letters) {
    const row = body.insertRow();
    row.dataset.id = letter.id;
    cell(row, new Date(letter.at_ms).toLocaleString());
    cell(row, letter.id);
    cell(row, letter.code);
    cell(row, letter.detail);
    cell(row, String(letter.attempts));
    cell(row, String(letter.data.url ?? letter.data.to ?? ""));
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Retry";
    button.addEventListener("click", () => retry(channel, letter.id));
    cell(row, "").append(button);
  }
  section.append(grid);
  return section;
}

async function load() {
  const answer = await fetch("/qa/deadletters.json");
  if (!answer.ok) {
    $("status").textContent = `cannot load the dead letters (HTTP ${answer.status})`;
    return;
  }
  const { channels } = await answer.json();
  $("channels").replaceChildren(...Object.entries(channels).map(([c, info]) => table(c, info)));
  if ($("status").textContent === "loading…") $("status").textContent = "";
}

load();
