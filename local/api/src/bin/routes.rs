//! `make routes`: writes template.yaml's HTTP routes from the functions' route tables.
//! `make routes-check` (`--check`): writes nothing, lists every line where template.yaml,
//! openapi.yaml or events/ disagree with the tables, and fails if there is one.

use std::{path::Path, process::ExitCode};

fn main() -> anyhow::Result<ExitCode> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if std::env::args().nth(1).as_deref() == Some("--check") {
        let problems = local_api::routes::problems(&root)?;
        for problem in &problems {
            println!("{problem}");
        }
        if problems.is_empty() {
            println!("routes: template.yaml, openapi.yaml and events/ agree with the route tables");
            return Ok(ExitCode::SUCCESS);
        }
        println!("routes: {} difference(s); `make routes` writes template.yaml's, the rest are edits", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    let path = root.join("template.yaml");
    let yaml = std::fs::read_to_string(&path)?;
    let written = local_api::routes::write_template(&yaml)?;
    if written != yaml {
        std::fs::write(&path, written)?;
        println!("routes: template.yaml written from the route tables");
    }
    for problem in local_api::routes::problems(&root)? {
        println!("{problem}");
    }
    Ok(ExitCode::SUCCESS)
}
