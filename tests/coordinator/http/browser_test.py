"""The web page in headless Chromium against a live coordinator and CPU worker: the
potions manifest is uploaded and submitted from the page (asking for previews every 2
steps), the gallery shows previews (1/8 of the image size) and then fills in with its 24
images over the job's event stream, the worker row shows its memory, and a screenshot is
written to the test output (web-ui.png). Then a coordinator with --auth: the page says it
needs a token, works once one is entered, and the gallery fills in over the token-carrying
event stream."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cdp import Browser  # noqa: E402
from live_cluster import USER_TOKEN, LiveCluster  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SMALL_MANIFEST = """name: knights
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 4, sampler: euler}
items:
  - {prompt: "a pixel art knight", count: 4, seed: 7}
"""

PREVIEWS = "Number(document.querySelector('#gallery').dataset.previews || 0)"
PREVIEW_SIZE = "document.querySelector('#gallery').dataset.previewSize"


def loaded_images(count):
    return ("[...document.querySelectorAll('#gallery img:not(.preview)')]"
            f".filter((i) => i.complete && i.naturalWidth === 128).length === {count}")


class BrowserTest(unittest.TestCase):
    def test_submit_potions_from_the_page_and_watch_the_gallery_fill(self):
        with LiveCluster("browser") as cluster:
            browser = Browser(os.path.join(cluster.dir, "chromium.log"))
            try:
                self.run_page(cluster, browser)
            finally:
                browser.close()

    def run_page(self, cluster, browser):
        browser.navigate(cluster.url + "/")
        browser.wait_for("document.querySelector('#workers tr[data-worker=\"cpu-0\"]') !== null",
                         what="the worker row")

        browser.set_files("#manifest-file", [os.path.join(SOURCE, "workflows", "potions.yaml")])
        browser.wait_for("document.querySelector('#manifest-text').value.startsWith('# Example batch job')",
                         what="the file to load into the text box")
        browser.evaluate("document.querySelector('#submit-button').click()")
        job_id = browser.wait_for(
            "(document.querySelector('#submit-status').textContent.match(/submitted: (job-[0-9a-f]+)/) || [])[1]",
            what="the submission to be acknowledged")

        self.assertEqual(browser.evaluate("document.querySelector('#preview-every').value"), "2")
        browser.wait_for(f"{PREVIEWS} > 0", seconds=120, what="a preview in the gallery")
        browser.wait_for(f"{PREVIEW_SIZE} === '16x16'", what="a preview of 128/8 x 128/8 pixels to load")
        browser.screenshot(os.path.join(cluster.dir, "web-ui-previews.png"))
        browser.wait_for(loaded_images(24), seconds=180, what="24 images in the gallery")
        self.assertEqual(browser.evaluate("document.querySelectorAll('#gallery .tile').length"), 24)
        # The gallery opened as the job was queued, so its images came over the event stream.
        self.assertGreater(int(browser.evaluate("document.querySelector('#gallery').dataset.streamed")), 0)

        row = f"document.querySelector('#jobs tr[data-job=\"{job_id}\"]')"
        browser.wait_for(f"{row}.textContent.includes('24/24') && {row}.textContent.includes('done')",
                         what="the job row to show 24/24 done")
        memory = browser.evaluate("document.querySelector('#workers tr[data-worker=\"cpu-0\"] td.memory').textContent")
        self.assertRegex(memory, r"used [1-9][0-9.]* (kB|MB|GB)")
        self.assertRegex(memory, r"budget [1-9][0-9.]* (MB|GB) of [1-9][0-9.]* (MB|GB)")
        self.assertRegex(browser.evaluate("document.querySelector('#summary').textContent"), "1 worker")

        browser.screenshot(os.path.join(cluster.dir, "web-ui.png"))
        self.assertEqual(browser.page_errors(), [])

    def test_with_auth_the_page_asks_for_a_token_and_sends_it(self):
        with LiveCluster("browser-auth", auth=True) as cluster:
            browser = Browser(os.path.join(cluster.dir, "chromium.log"))
            try:
                self.run_page_with_auth(cluster, browser)
            finally:
                browser.close()

    def run_page_with_auth(self, cluster, browser):
        browser.navigate(cluster.url + "/")
        banner = "document.querySelector('#auth-status')"
        browser.wait_for(f"!{banner}.hidden && {banner}.textContent.includes('needs a token')",
                         what="the page to ask for a token")
        self.assertIn("token", browser.evaluate("document.querySelector('#summary').textContent"))

        browser.evaluate(f"document.querySelector('#token').value = '{USER_TOKEN}'")
        browser.evaluate("document.querySelector('#token-save').click()")
        browser.wait_for("document.querySelector('#workers tr[data-worker=\"cpu-0\"]') !== null",
                         what="the worker row, fetched with the token")
        self.assertTrue(browser.evaluate(f"{banner}.hidden"))
        self.assertEqual(browser.evaluate("localStorage.getItem('spriteforge.token')"), USER_TOKEN)

        browser.evaluate(f"document.querySelector('#manifest-text').value = {SMALL_MANIFEST!r}")
        browser.evaluate("document.querySelector('#submit-button').click()")
        job_id = browser.wait_for(
            "(document.querySelector('#submit-status').textContent.match(/submitted: (job-[0-9a-f]+)/) || [])[1]",
            what="the submission to be acknowledged")
        browser.wait_for(loaded_images(4), seconds=120, what="4 images in the gallery, fetched with the token")
        self.assertGreater(int(browser.evaluate("document.querySelector('#gallery').dataset.streamed")), 0)
        self.assertGreater(browser.evaluate(PREVIEWS), 0)
        row = f"document.querySelector('#jobs tr[data-job=\"{job_id}\"]')"
        browser.wait_for(f"{row}.textContent.includes('4/4')", what="the job row to show 4/4")

        # A wrong token: the page says the coordinator refused it.
        browser.evaluate("document.querySelector('#token').value = 'not-a-valid-token-0000'")
        browser.evaluate("document.querySelector('#token-save').click()")
        browser.wait_for(f"!{banner}.hidden && {banner}.textContent.includes('refused the token')",
                         what="the page to report a refused token")
        errors = [e for e in browser.page_errors() if "401" not in e]  # the browser logs refused fetches
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
