//! The report's text files: `report.html` (figures inline), `report.md` (figures as PNG links)
//! and `pareto.csv`.

use std::fmt::Write;

use crate::plots::Figure;
use crate::{Report, Speedup};

fn pct(score: f64) -> String {
    format!("{:.2} %", 100.0 * score)
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

/// Every evaluated arch: `arch,score,latency_ms,feasible,front`.
pub(crate) fn pareto_csv(r: &Report) -> String {
    let mut csv = format!("arch,{}_dev_{},latency_ms,feasible,front\n", r.task, r.metric);
    for p in &r.points {
        let _ = writeln!(csv, "\"{}\",{},{},{},{}", p.arch, p.score, p.latency_ms, p.feasible, p.front);
    }
    csv
}

/// The headline: the most accurate exported model within the latency budget.
fn answer(r: &Report) -> Option<String> {
    let best = r.chosen.iter().max_by(|a, b| a.score.total_cmp(&b.score))?;
    let within = r.latency_budget_ms.map_or(String::new(), |b| format!(" within {b} ms"));
    Some(format!(
        "The most accurate model found{within} on {}: {} — {} {} at {} predicted.",
        r.device,
        best.arch,
        r.metric,
        pct(best.score),
        ms(best.latency_ms)
    ))
}

/// Rows of the front, fastest first.
fn front(r: &Report) -> Vec<&crate::Point> {
    let mut front: Vec<&crate::Point> = r.points.iter().filter(|p| p.front).collect();
    front.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    front
}

fn speedup(s: &Speedup) -> f64 {
    s.eager_ms / s.compiled_ms
}

/// A table cell: plain text, or code (an arch, a command).
enum Cell {
    Text(String),
    Code(String),
}

/// A table of the report, rendered as Markdown or HTML.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table { head: head.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "| {} |", self.head.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(self.head.len()));
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => t.replace('|', "\\|"),
                    Cell::Code(t) => format!("`{}`", t.replace('|', "\\|")),
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    }

    fn html(&self, out: &mut String) {
        out.push_str("<table><thead><tr>");
        for h in &self.head {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr></thead><tbody>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = match c {
                    Cell::Text(t) => write!(out, "<td>{}</td>", esc(t)),
                    Cell::Code(t) => write!(out, "<td><code>{}</code></td>", esc(t)),
                };
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn code(s: impl Into<String>) -> Cell {
    Cell::Code(s.into())
}

/// The report's sections after the figures: (heading, table), those with rows only.
struct Tables {
    chosen: Table,
    front: Table,
    after: Vec<(&'static str, Table)>,
}

fn tables(r: &Report) -> Tables {
    let mut chosen = Table::new(&["chosen as", "arch", &r.metric, "latency", "run it"]);
    for c in &r.chosen {
        chosen.row(vec![text(&c.label), code(&c.arch), text(pct(c.score)), text(ms(c.latency_ms)), code(&c.command)]);
    }
    let mut front_table = Table::new(&["arch on the front", &r.metric, "latency"]);
    for p in front(r) {
        front_table.row(vec![code(&p.arch), text(pct(p.score)), text(ms(p.latency_ms))]);
    }
    let mut references = Table::new(&["model", "arch", &r.metric, "latency", "note"]);
    for x in &r.references {
        references.row(vec![
            text(&x.label),
            code(&x.arch),
            text(x.score.map_or("—".into(), pct)),
            text(x.latency_ms.map_or("—".into(), ms)),
            text(x.skipped.clone().unwrap_or_default()),
        ]);
    }
    let mut speedups = Table::new(&["model", "arch", "compiled", "burn eager", "speed-up", "threads"]);
    for s in &r.speedups {
        speedups.row(vec![
            text(&s.label),
            code(&s.arch),
            text(ms(s.compiled_ms)),
            text(ms(s.eager_ms)),
            text(format!("{:.2}×", speedup(s))),
            text(s.threads.to_string()),
        ]);
    }
    let mut facts = Table::new(&["", ""]);
    for (k, v) in &r.facts {
        facts.row(vec![text(k), text(v)]);
    }
    let after = [("Reference models", references), ("Compiled against burn eager (measured)", speedups), ("The run", facts)]
        .into_iter()
        .filter(|(_, t)| !t.rows.is_empty())
        .collect();
    Tables { chosen, front: front_table, after }
}

pub(crate) fn markdown(r: &Report, figures: &[Figure]) -> String {
    let tables = tables(r);
    let mut md = format!("# {} — canao report\n\n", r.name);
    let _ = writeln!(md, "Task **{}** ({} on the dev split), latency on **{}**.\n", r.task, r.metric, r.device);
    if let Some(note) = &r.note {
        let _ = writeln!(md, "> **Note:** {note}\n");
    }
    if let Some(answer) = answer(r) {
        let _ = writeln!(md, "{answer}\n");
    }
    md.push_str("## Exported models\n\n");
    tables.chosen.markdown(&mut md);
    for f in figures {
        let _ = writeln!(md, "## {}\n\n![{}]({}.png)\n\n{}\n", f.title, f.title, f.stem, f.caption);
        if f.stem == "pareto" {
            tables.front.markdown(&mut md);
        }
    }
    for (heading, table) in &tables.after {
        let _ = writeln!(md, "## {heading}\n");
        table.markdown(&mut md);
    }
    md.push_str("Files: `pareto.csv` (every evaluated arch), `report.json` (every number above), SVG and PNG of each figure.\n");
    md
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}\
figure{margin:2em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#555;font-size:0.9em}\
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:0.6em 1em}.answer{font-size:1.15em}code{font-size:0.9em}";

/// Marks the page once its figures have a size: `data-figures` = how many drew (for tests).
const SCRIPT: &str = "window.addEventListener('load',()=>{const n=[...document.querySelectorAll('figure svg')]\
.filter(s=>{const b=s.getBoundingClientRect();return b.width>100&&b.height>100}).length;\
document.body.setAttribute('data-figures',String(n));});";

pub(crate) fn html(r: &Report, figures: &[Figure]) -> String {
    let tables = tables(r);
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — canao report</title>\
         <style>{STYLE}</style><script>{SCRIPT}</script></head><body>\n<h1>{} — canao report</h1>\n",
        esc(&r.name),
        esc(&r.name)
    );
    let _ = writeln!(h, "<p>Task <b>{}</b> ({} on the dev split), latency on <b>{}</b>.</p>", esc(&r.task), esc(&r.metric), esc(&r.device));
    if let Some(note) = &r.note {
        let _ = writeln!(h, "<p class=\"note\"><b>Note:</b> {}</p>", esc(note));
    }
    if let Some(answer) = answer(r) {
        let _ = writeln!(h, "<p class=\"answer\">{}</p>", esc(&answer));
    }
    h.push_str("<h2>Exported models</h2>\n");
    tables.chosen.html(&mut h);
    for f in figures {
        // plotters' SVG has no XML prolog, so it can be inlined as it is.
        let _ = writeln!(
            h,
            "<h2>{}</h2>\n<figure id=\"{}\">{}<figcaption>{} (<a href=\"{}.svg\">SVG</a>, <a href=\"{}.png\">PNG</a>)</figcaption></figure>",
            esc(&f.title),
            f.stem,
            f.svg,
            esc(&f.caption),
            f.stem,
            f.stem
        );
        if f.stem == "pareto" {
            tables.front.html(&mut h);
        }
    }
    for (heading, table) in &tables.after {
        let _ = writeln!(h, "<h2>{}</h2>", esc(heading));
        table.html(&mut h);
    }
    h.push_str(
        "<p>Files beside this page: <a href=\"pareto.csv\">pareto.csv</a> (every evaluated arch), \
         <a href=\"report.json\">report.json</a>, <a href=\"report.md\">report.md</a>.</p>\n</body></html>\n",
    );
    h
}
