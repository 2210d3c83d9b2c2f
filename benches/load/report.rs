//! The table on stdout, one column per engine side by side, and the same numbers as JSON
//! (`target/bench/load.json`).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::engine::Engine;

/// A figure held against a target.
pub struct Target {
    pub text: String,
    pub pass: bool,
}

impl Target {
    pub fn at_least(value: f64, min: f64, unit: &str) -> Self {
        Self { text: format!("≥ {min} {unit}"), pass: value >= min }
    }

    pub fn below(value: f64, max: f64, unit: &str) -> Self {
        Self { text: format!("< {max} {unit}"), pass: value < max }
    }
}

struct Cell {
    value: String,
    target: Option<Target>,
}

struct Row {
    name: String,
    heading: bool,
    /// One per engine, in `Engine::ALL`'s order.
    cells: [Option<Cell>; 2],
}

/// Rows are shared by the engines: an engine's figure goes into the row of that name, so the
/// engines' figures stand side by side. A row only one engine has (the two-instance storm) is
/// placed after the row last written.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    /// Where the next new row goes.
    cursor: usize,
    sections: Map<String, Value>,
}

fn column(engine: Engine) -> usize {
    Engine::ALL.iter().position(|e| *e == engine).unwrap_or(0)
}

impl Report {
    fn place(&mut self, name: &str, heading: bool) -> usize {
        let at = match self.rows.iter().position(|r| r.name == name && r.heading == heading) {
            Some(at) => at,
            None => {
                let at = self.cursor.min(self.rows.len());
                self.rows.insert(at, Row { name: name.to_owned(), heading, cells: [None, None] });
                at
            }
        };
        self.cursor = at + 1;
        at
    }

    /// Starts (or returns to) a group of rows.
    pub fn heading(&mut self, name: &str) {
        self.place(name, true);
    }

    /// One engine's figure in the row `name`, held against `target` when given.
    pub fn row(&mut self, engine: Engine, name: &str, value: String, target: Option<Target>) {
        let at = self.place(name, false);
        self.rows[at].cells[column(engine)] = Some(Cell { value, target });
    }

    /// A JSON section of one engine (`engines.{engine}.{key}`), or of the run when `None`.
    pub fn section(&mut self, engine: Option<Engine>, key: &str, value: Value) {
        match engine {
            None => {
                self.sections.insert(key.to_owned(), value);
            }
            Some(engine) => {
                let engines = self.sections.entry("engines").or_insert_with(|| json!({}));
                if let Some(engines) = engines.as_object_mut() {
                    let of = engines.entry(engine.id()).or_insert_with(|| json!({}));
                    if let Some(of) = of.as_object_mut() {
                        of.insert(key.to_owned(), value);
                    }
                }
            }
        }
    }

    pub fn misses(&self) -> Vec<String> {
        let mut misses = Vec::new();
        for row in &self.rows {
            for (engine, cell) in Engine::ALL.iter().zip(&row.cells) {
                if cell.as_ref().and_then(|c| c.target.as_ref()).is_some_and(|t| !t.pass) {
                    misses.push(format!("{} ({})", row.name.trim(), engine.title()));
                }
            }
        }
        misses
    }

    /// A cell as printed: the value, then the target and (when judged) PASS or MISS.
    fn text(cell: &Option<Cell>, judge: bool) -> String {
        match cell {
            None => "—".to_owned(),
            Some(Cell { value, target: None }) => value.clone(),
            Some(Cell { value, target: Some(t) }) if judge => {
                format!("{value}  {} {}", if t.pass { "PASS" } else { "MISS" }, t.text)
            }
            Some(Cell { value, target: Some(t) }) => format!("{value}  ({})", t.text),
        }
    }

    /// The table; `judge` false leaves PASS/MISS out (smoke runs are too short to judge).
    pub fn print(&self, judge: bool) {
        let texts: Vec<[String; 2]> =
            self.rows.iter().map(|r| [Self::text(&r.cells[0], judge), Self::text(&r.cells[1], judge)]).collect();
        let width = |f: &dyn Fn(usize) -> usize| (0..self.rows.len()).filter(|&i| !self.rows[i].heading).map(f).max();
        let name_width = width(&|i| self.rows[i].name.chars().count()).unwrap_or(0);
        let first_width = width(&|i| texts[i][0].chars().count()).unwrap_or(0).max(6);
        println!();
        println!(
            "{}  {}  {}",
            pad("figure", name_width),
            pad(Engine::Sqlite.title(), first_width),
            Engine::Postgres.title()
        );
        for (row, [first, second]) in self.rows.iter().zip(&texts) {
            if row.heading {
                println!("— {}", row.name);
            } else {
                println!("{}  {}  {second}", pad(&row.name, name_width), pad(first, first_width));
            }
        }
        println!();
    }

    pub fn json(&self) -> Value {
        let cell = |c: &Option<Cell>| {
            c.as_ref().map(|c| {
                json!({
                    "value": c.value,
                    "target": c.target.as_ref().map(|t| t.text.clone()),
                    "pass": c.target.as_ref().map(|t| t.pass),
                })
            })
        };
        let mut heading = String::new();
        let mut table = Vec::new();
        for row in &self.rows {
            if row.heading {
                heading = row.name.clone();
                continue;
            }
            let mut entry = json!({ "group": heading, "figure": row.name });
            for (engine, c) in Engine::ALL.iter().zip(&row.cells) {
                entry[engine.id()] = cell(c).unwrap_or(Value::Null);
            }
            table.push(entry);
        }
        let mut all = self.sections.clone();
        all.insert("table".to_owned(), Value::Array(table));
        Value::Object(all)
    }

    /// Writes the JSON under the target directory; returns where.
    pub fn write(&self, file: &str) -> anyhow::Result<PathBuf> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        let dir = target.join("bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string_pretty(&self.json())?)?;
        Ok(path)
    }
}

fn pad(text: &str, width: usize) -> String {
    let fill = width.saturating_sub(text.chars().count());
    format!("{text}{}", " ".repeat(fill))
}
