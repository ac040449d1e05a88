"""`make template-check`: template.yaml as the truth. Every check that compares the template
with the code runs here, and the result is one report: a line per check, what each found under
it, and a failing exit if any found something.

  routes        the HttpApi events, openapi.yaml and events/ against the functions' route! tables
  environments  each function's template environment against what its configuration reads
  rules         what the template must grant and alarm on (tests/integration/template.rs)
  cfn-lint      CloudFormation's own rules
  sam validate  SAM's transform and its lint
"""

import os
import shutil
import subprocess
import sys

VENV = ".local/venv/bin"
SAM = ".local/sam-venv/bin/sam"


def rules_command():
    if shutil.which("cargo-nextest"):
        return ["cargo", "nextest", "run", "--no-fail-fast", "--hide-progress-bar", "--status-level", "fail",
                "--final-status-level", "none", "-p", "integration-tests", "-E", "test(/^template::/)"]
    return ["cargo", "test", "--quiet", "-p", "integration-tests", "--test", "integration", "template::"]


CHECKS = [
    ("routes", "HttpApi events, openapi.yaml and events/ against the route! tables",
     ["cargo", "run", "--quiet", "-p", "local-api", "--bin", "template-check", "--", "routes"]),
    ("environments", "each function's environment against what its configuration reads",
     ["cargo", "run", "--quiet", "-p", "local-api", "--bin", "template-check", "--", "environments"]),
    ("rules", "policies, streams, alarms and secrets (tests/integration/template.rs)", rules_command()),
    ("cfn-lint", "CloudFormation's rules", [f"{VENV}/cfn-lint", "template.yaml"]),
    ("sam validate", "SAM's transform and lint", [SAM, "validate", "--lint", "--region", "us-east-1"]),
]


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    results = []
    for name, what, command in CHECKS:
        run = subprocess.run(command, capture_output=True, text=True, env=env)
        found = (run.stdout + run.stderr).strip() if run.returncode else ""
        results.append((name, what, run.returncode == 0, found))
    print("template check: template.yaml against the code")
    for name, what, ok, found in results:
        print(f"  {'ok  ' if ok else 'FAIL'}  {name:13} {what}")
        for line in found.splitlines():
            print(f"          {line}")
    failed = [name for name, _, ok, _ in results if not ok]
    print(f"template check: {len(results) - len(failed)} of {len(results)} passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
