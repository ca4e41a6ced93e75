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

/// Every evaluated arch: `arch,score,latency_ms[device]…,feasible,front[device]…`.
pub(crate) fn pareto_csv(r: &Report) -> String {
    let mut csv = format!("arch,{}_dev_{}", r.task, r.metric);
    for d in &r.devices {
        let _ = write!(csv, ",latency_ms[{}]", d.name);
    }
    csv.push_str(",feasible");
    for d in &r.devices {
        let _ = write!(csv, ",front[{}]", d.name);
    }
    csv.push('\n');
    for p in &r.points {
        let _ = write!(csv, "\"{}\",{}", p.arch, p.score);
        for ms in &p.latency_ms {
            let _ = write!(csv, ",{ms}");
        }
        let _ = write!(csv, ",{}", p.feasible);
        for f in &p.front {
            let _ = write!(csv, ",{f}");
        }
        csv.push('\n');
    }
    csv
}

/// The headline: the most accurate exported model within the budget on the first device.
fn answer(r: &Report) -> Option<String> {
    let best = r.chosen.iter().max_by(|a, b| a.score.total_cmp(&b.score))?;
    let device = r.devices.first()?;
    let within = device.latency_budget_ms.map_or(String::new(), |b| format!(" within {b} ms"));
    Some(format!(
        "The most accurate model found{within} on {}: {} — {} {} at {} predicted.",
        device.name,
        best.arch,
        r.metric,
        pct(best.score),
        ms(*best.latency_ms.first()?)
    ))
}

/// Rows of device `d`'s front, fastest first.
fn front(r: &Report, d: usize) -> Vec<&crate::Point> {
    let mut front: Vec<&crate::Point> = r.points.iter().filter(|p| p.front[d]).collect();
    front.sort_by(|a, b| a.latency_ms[d].total_cmp(&b.latency_ms[d]));
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

/// The report's tables: the exports, each device's front, and the sections after the figures
/// (those with rows only).
struct Tables {
    chosen: Table,
    fronts: Vec<Table>,
    after: Vec<(&'static str, Table)>,
}

/// Column headings of a value per device: `latency` for one device, `latency on D` for several.
fn per_device(r: &Report, what: &str) -> Vec<String> {
    if r.devices.len() == 1 {
        vec![what.to_string()]
    } else {
        r.devices.iter().map(|d| format!("{what} on {}", d.name)).collect()
    }
}

fn head<'a>(fixed: &[&'a str], devices: &'a [String], tail: &[&'a str]) -> Vec<&'a str> {
    fixed.iter().copied().chain(devices.iter().map(String::as_str)).chain(tail.iter().copied()).collect()
}

fn latencies(values: &[f64], devices: usize) -> Vec<Cell> {
    if values.is_empty() {
        return (0..devices).map(|_| text("—")).collect();
    }
    values.iter().map(|&v| text(ms(v))).collect()
}

fn tables(r: &Report) -> Tables {
    let n = r.devices.len();
    let lat = per_device(r, "latency");
    let mut chosen = Table::new(&head(&["chosen as", "arch", &r.metric], &lat, &["run it"]));
    for c in &r.chosen {
        let mut row = vec![text(&c.label), code(&c.arch), text(pct(c.score))];
        row.extend(latencies(&c.latency_ms, n));
        row.push(code(&c.command));
        chosen.row(row);
    }
    let fronts = (0..n)
        .map(|d| {
            let mut t = Table::new(&["arch on the front", &r.metric, &format!("latency on {}", r.devices[d].name)]);
            for p in front(r, d) {
                t.row(vec![code(&p.arch), text(pct(p.score)), text(ms(p.latency_ms[d]))]);
            }
            t
        })
        .collect();
    let mut references = Table::new(&head(&["model", "arch", &r.metric], &lat, &["note"]));
    for x in &r.references {
        let mut row = vec![text(&x.label), code(&x.arch), text(x.score.map_or("—".into(), pct))];
        row.extend(latencies(&x.latency_ms, n));
        row.push(text(x.skipped.clone().unwrap_or_default()));
        references.row(row);
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
    let after =
        [("Reference models", references), ("Compiled against burn eager (measured)", speedups), ("The run", facts)]
            .into_iter()
            .filter(|(_, t)| !t.rows.is_empty())
            .collect();
    Tables { chosen, fronts, after }
}

fn devices_line(r: &Report) -> String {
    r.devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
}

pub(crate) fn markdown(r: &Report, figures: &[Figure]) -> String {
    let tables = tables(r);
    let mut md = format!("# {} — canao report\n\n", r.name);
    let _ = writeln!(md, "Task **{}** ({} on the dev split), latency on **{}**.\n", r.task, r.metric, devices_line(r));
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
        if let Some(d) = f.device {
            tables.fronts[d].markdown(&mut md);
        }
    }
    for (heading, table) in &tables.after {
        let _ = writeln!(md, "## {heading}\n");
        table.markdown(&mut md);
    }
    md.push_str(
        "Files: `pareto.csv` (every evaluated arch), `report.json` (every number above), SVG and PNG of each figure.\n",
    );
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
    let _ = writeln!(
        h,
        "<p>Task <b>{}</b> ({} on the dev split), latency on <b>{}</b>.</p>",
        esc(&r.task),
        esc(&r.metric),
        esc(&devices_line(r))
    );
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
        if let Some(d) = f.device {
            tables.fronts[d].html(&mut h);
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
