//! `make routes`: writes template.yaml's HTTP routes from the functions' route tables, then
//! lists what else disagrees with them (openapi.yaml and events/ are edited by hand).
//! `make template-check` reports the same without writing.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
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
    Ok(())
}
