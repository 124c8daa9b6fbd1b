"""The web page in headless Chromium against a live coordinator and CPU worker: the
potions manifest is uploaded and submitted from the page, the gallery fills in with its
24 images over the job's event stream, the worker row shows its memory, and a screenshot
is written to the test output (web-ui.png)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cdp import Browser  # noqa: E402
from live_cluster import LiveCluster  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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

        loaded = ("[...document.querySelectorAll('#gallery img')]"
                  ".filter((i) => i.complete && i.naturalWidth === 128).length")
        browser.wait_for(f"{loaded} === 24", seconds=180, what="24 images in the gallery")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
