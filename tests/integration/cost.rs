//! `make cost`: the estimate is computed from the committed benchmark, profile and prices, and
//! its table adds up.

use std::process::Command;

#[test]
fn make_cost_prints_a_table_whose_totals_add_up_and_cost_per_user_falls_with_scale() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(format!("{repo}/.local/venv/bin/python"))
        .arg(format!("{repo}/bench/cost.py"))
        .output()
        .expect("the project's venv (make test installs it) runs bench/cost.py");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let cells = |line: &str| -> Vec<f64> {
        line.split('|')
            .skip(2)
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.trim().trim_matches('*').replace(',', "").parse().unwrap())
            .collect()
    };
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| item")).collect();
    let items: Vec<Vec<f64>> =
        rows.iter().filter(|l| !l.contains("total") && !l.contains("per MAU")).map(|l| cells(l)).collect();
    assert!(items.len() >= 10, "{text}");
    let total = cells(rows.iter().find(|l| l.contains("**total**")).expect("a total row"));
    let per_user = cells(rows.iter().find(|l| l.contains("per MAU")).expect("a per-user row"));
    assert_eq!(total.len(), 3, "1k, 10k and 100k users");
    for column in 0..3 {
        let sum: f64 = items.iter().map(|row| row[column]).sum();
        assert!((sum - total[column]).abs() < 0.05 * items.len() as f64, "column {column}: {sum} vs {}", total[column]);
        assert!(total[column] > 0.0);
    }
    assert!(total[0] < total[1] && total[1] < total[2], "more users cost more: {total:?}");
    assert!(per_user[0] > per_user[1] && per_user[1] > per_user[2], "fixed costs spread: {per_user:?}");
}
