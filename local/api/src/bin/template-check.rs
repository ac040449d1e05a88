//! One part of `make template-check` (local/template_check.py runs them all and reports once):
//! `routes` lists every line where template.yaml's HTTP events, openapi.yaml or events/ disagree
//! with the functions' route tables; `environments` every function whose configuration needs a
//! variable its template environment lacks, and every declared variable nothing reads.

use std::{path::Path, process::ExitCode};

use anyhow::{Context, bail};

fn main() -> anyhow::Result<ExitCode> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let problems = match std::env::args().nth(1).as_deref() {
        Some("routes") => local_api::routes::problems(&root)?,
        Some("environments") => {
            let yaml = std::fs::read_to_string(root.join("template.yaml")).context("reading template.yaml")?;
            local_api::functions::template_problems(&yaml)?
        }
        _ => bail!("usage: template-check routes|environments"),
    };
    for problem in &problems {
        println!("{problem}");
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
