"""Fixtures for the browser journey: Debian's Chromium driven by Playwright (never a downloaded
browser), the local API under test (API_BASE, started by tests/e2e.sh), and read access to what
the backend holds (moto's DynamoDB and S3, with the stack's environment)."""

import os
import pathlib
import shutil

import boto3
import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".local" / "screenshots"


def chromium_path():
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed: local/stack.sh test-tools installs Debian's package")


@pytest.fixture(scope="session")
def base_url():
    return os.environ["API_BASE"]


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                # A microphone that plays a tone, so the page can record a voice sample.
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900}, permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


class Backend:
    """What the backend holds, read straight from the stores."""

    def __init__(self):
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=region)
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
        self.bucket = os.environ["AUDIO_BUCKET"]

    def table(self, variable):
        return self.dynamodb.Table(os.environ[variable])

    def user(self, user_id):
        return self.table("USERS_TABLE").get_item(Key={"userId": user_id}, ConsistentRead=True).get("Item")

    def query(self, variable, user_id):
        from boto3.dynamodb.conditions import Key

        return self.table(variable).query(KeyConditionExpression=Key("userId").eq(user_id), ConsistentRead=True)["Items"]

    def recordings(self, user_id):
        return self.query("RECORDINGS_TABLE", user_id)

    def voices(self, user_id):
        """The cloned voices (the table also holds their samples)."""
        return [v for v in self.query("VOICES_TABLE", user_id) if v["itemId"].startswith("voice#")]

    def subscriptions(self, user_id):
        return self.query("SUBSCRIPTIONS_TABLE", user_id)

    def sessions(self, user_id):
        from boto3.dynamodb.conditions import Key

        table = self.table("SESSIONS_TABLE")
        return table.query(IndexName="user-index", KeyConditionExpression=Key("userId").eq(user_id))["Items"]

    def has_object(self, key):
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except self.s3.exceptions.ClientError:
            return False


@pytest.fixture(scope="session")
def backend():
    return Backend()


AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"

# What axe-core reports: serious and critical violations of WCAG 2.1 A and AA and axe's best
# practices, each with the elements it found.
AXE_RUN = """async () => {
  const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
  const result = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}"""


@pytest.fixture(scope="session")
def accessible():
    """accessible(page, state): axe-core run on the page as it is now; fails naming each serious
    or critical violation and its elements. The script goes in through the DevTools protocol, so
    the page's Content-Security-Policy stays as it is."""
    if not AXE.exists():
        pytest.fail("axe-core is not installed: local/stack.sh test-tools installs it (npm ci in tests/browser)")
    source = AXE.read_text()

    def check(page, state):
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(source)
        violations = page.evaluate(AXE_RUN)
        assert violations == [], f"{state}: " + "; ".join(violations)

    return check


@pytest.fixture(scope="session")
def shoot():
    """shoot(page, name): a full-page screenshot in .local/screenshots/, numbered in step order."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    counter = iter(range(1, 100))

    def take(page, name):
        path = SCREENSHOTS / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
