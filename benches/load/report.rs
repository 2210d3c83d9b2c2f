//! The table on stdout and the same numbers as JSON (`target/bench/load.json`).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

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

struct Row {
    name: String,
    value: String,
    ratio: Option<f64>,
    target: Option<Target>,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    sections: Map<String, Value>,
}

impl Report {
    pub fn heading(&mut self, name: &str) {
        self.rows.push(Row { name: format!("— {name}"), value: String::new(), ratio: None, target: None });
    }

    /// A row of the table; `ratio` is the figure as a fraction of the baseline's requests/s.
    pub fn row(&mut self, name: &str, value: String, ratio: Option<f64>, target: Option<Target>) {
        self.rows.push(Row { name: name.to_owned(), value, ratio, target });
    }

    pub fn section(&mut self, key: &str, value: Value) {
        self.sections.insert(key.to_owned(), value);
    }

    pub fn misses(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.target.as_ref().is_some_and(|t| !t.pass))
            .map(|r| r.name.trim().to_owned())
            .collect()
    }

    /// The table; `judge` false leaves the PASS/MISS column empty (smoke runs are too short to
    /// judge anything).
    pub fn print(&self, judge: bool) {
        let width = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(0);
        let value_width = self.rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(0);
        println!();
        println!("{:width$}  {:>value_width$}  {:>9}  {:<18} result", "figure", "value", "÷ baseline", "target");
        for row in &self.rows {
            let ratio = row.ratio.map(|r| format!("{:.1} %", r * 100.0)).unwrap_or_default();
            let (target, result) = match &row.target {
                Some(t) if judge => (t.text.as_str(), if t.pass { "PASS" } else { "MISS" }),
                Some(t) => (t.text.as_str(), ""),
                None => ("", ""),
            };
            let pad = width - row.name.chars().count();
            let value_pad = value_width - row.value.chars().count();
            println!(
                "{}{}  {}{}  {ratio:>9}  {target:<18} {result}",
                row.name,
                " ".repeat(pad),
                " ".repeat(value_pad),
                row.value
            );
        }
        println!();
    }

    pub fn json(&self) -> Value {
        let table: Vec<Value> = self
            .rows
            .iter()
            .filter(|r| !r.value.is_empty())
            .map(|r| {
                json!({
                    "figure": r.name,
                    "value": r.value,
                    "ratio_to_baseline": r.ratio,
                    "target": r.target.as_ref().map(|t| t.text.clone()),
                    "pass": r.target.as_ref().map(|t| t.pass),
                })
            })
            .collect();
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
