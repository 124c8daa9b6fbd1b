"""The web page in headless Chromium against a live coordinator and CPU worker: the
potions manifest is uploaded and submitted from the page (asking for previews every 2
steps), the gallery shows previews (1/8 of the image size) and then fills in with its 24
images over the job's event stream, and the worker row shows its memory. Then a job made
from the form alone (no YAML typed): its progress moves by sampling steps before any image
finishes, an image opens full size with its parameters and is paged with the keyboard, the
job is re-run with the same seeds, the re-run is deleted with its files, the first job
downloaded as a zip, and a cancelled job's tiles stop. Screenshots (1280x800, a 390 px phone, the image view) go to the test
output. Then a coordinator with --auth: the page says it needs a token, works once one is
entered, and the gallery fills in over the token-carrying event stream; a viewer's token
is offered no form, cancel or delete."""

import io
import json
import os
import sys
import unittest
import urllib.error
import zipfile

sys.path.insert(0, os.path.dirname(__file__))
from cdp import Browser  # noqa: E402
from live_cluster import USER_TOKEN, VIEWER_TOKEN, LiveCluster  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SMALL_MANIFEST = """name: knights
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 4, sampler: euler}
items:
  - {prompt: "a pixel art knight", count: 4, seed: 7}
"""

CANCEL_MANIFEST = """name: barrels
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 8}
items:
  - {prompt: "a barrel", count: 40}
"""

PREVIEWS = "Number(document.querySelector('#gallery').dataset.previews || 0)"
PREVIEW_SIZE = "document.querySelector('#gallery').dataset.previewSize"


def loaded_images(count, width=128):
    return ("[...document.querySelectorAll('#gallery img:not(.preview):not(.input)')]"
            f".filter((i) => i.complete && i.naturalWidth === {width}).length === {count}")


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
        # The worker's own memory, then every process's on the machine.
        self.assertRegex(memory, r"worker [1-9][0-9.]* (kB|MB|GB) · machine [1-9][0-9.]* (kB|MB|GB)")
        self.assertRegex(memory, r"budget [1-9][0-9.]* (MB|GB) of [1-9][0-9.]* (MB|GB)")
        self.assertRegex(browser.evaluate("document.querySelector('#summary').textContent"), "1 worker")

        self.make_job_from_the_form(cluster, browser)
        self.assertEqual(browser.page_errors(), [])

    def make_job_from_the_form(self, cluster, browser):
        q = "document.querySelector"
        self.assertEqual(browser.evaluate(f"{q}('#f-model').value"), "tiny-sdxl")  # from /v1/workers/files
        for field, value in (("#f-name", "knights"), ("#f-prompt", "a pixel art knight, (red cape:1.2)"),
                             ("#f-steps", "8"), ("#f-seed", "7"), ("#f-count", "4"), ("#f-pixelate", "32x32")):
            browser.evaluate(f"{q}({field!r}).value = {value!r}")
        browser.evaluate(f"{q}('#make-form').dispatchEvent(new Event('input'))")
        manifest = browser.evaluate(f"{q}('#manifest-text').value")
        self.assertIn('name: "knights"', manifest)
        self.assertIn('postprocess: {pixelate: "32x32"}', manifest)
        self.assertIn('seed: 7', manifest)
        browser.evaluate(f"{q}('#submit-button').click()")
        job_id = browser.wait_for(
            f"({q}('#submit-status').textContent.match(/submitted: (job-[0-9a-f]+)/) || [])[1]",
            what="the form's job to be acknowledged")
        browser.wait_for(loaded_images(4, 32), seconds=120, what="the form job's 4 sprites")
        # Progress moved by steps while no image had finished (the first batch).
        self.assertGreater(float(browser.evaluate(f"{q}('#gallery').dataset.steppedBeforeDone || 0")), 0)
        self.assertGreater(browser.evaluate(f"{q}('#gallery-panel').getBoundingClientRect().top"), -1)
        self.assertIn("idle", browser.wait_for(f"{q}('#summary').textContent.includes('idle') && "
                                               f"{q}('#summary').textContent", what="the summary to say idle"))
        # The history search goes to the coordinator: words of the form job's prompt find it alone.
        search = f"{q}('#history-search')"
        rows = f"[...document.querySelectorAll('#jobs tbody tr')].map((r) => r.dataset.job).join(',')"
        browser.evaluate(f"{search}.value = 'CAPE red'; {search}.dispatchEvent(new Event('input'))")
        browser.wait_for(f"{rows} === {job_id!r} && {q}('#history-page').textContent.includes('(1 jobs)')",
                         what="the search to list the form's job alone")
        browser.evaluate(f"{search}.value = ''; {search}.dispatchEvent(new Event('input'))")
        browser.wait_for(f"{q}('#history-page').textContent.includes('(2 jobs)')", what="the whole history again")
        browser.resize(1280, 800)
        browser.evaluate("window.scrollTo(0, 0)")
        browser.screenshot(os.path.join(cluster.dir, "web-ui.png"))

        # The image view: full size, its parameters, the keyboard.
        browser.evaluate(f"{q}('#gallery .tile[data-index=\"0\"] button.open-image').click()")
        browser.wait_for(f"{q}('#viewer').open && {q}('#viewer-params').textContent.includes('red cape')",
                         what="the image view with its parameters")
        self.assertEqual(browser.evaluate(f"{q}('#viewer').dataset.seed"), "7")
        self.assertIn("cpu-0", browser.evaluate(f"{q}('#viewer-params').textContent"))
        browser.screenshot(os.path.join(cluster.dir, "web-ui-image.png"))
        browser.press("ArrowRight", keycode=39)
        browser.wait_for(f"{q}('#viewer').dataset.seed === '8'", what="the next image (seed 8)")
        browser.press("Escape", keycode=27)
        browser.wait_for(f"!{q}('#viewer').open", what="Escape to close the image view")

        # Re-run with the same seeds, then delete the re-run with its files.
        browser.evaluate(f"{q}('#rerun-same').click()")
        rerun_id = browser.wait_for(
            f"(({q}('#submit-status').textContent.match(/submitted: (job-[0-9a-f]+)/) || [])[1] || '')"
            f".replace({job_id!r}, '')", what="the re-run to be acknowledged")
        browser.wait_for(loaded_images(4), seconds=120, what="the re-run's 4 images")
        def seeds(job):
            return sorted(r["seed"] for r in json.loads(cluster.get(f"/v1/jobs/{job}/results"))["results"])
        self.assertEqual(seeds(rerun_id), seeds(job_id))
        browser.wait_for(f"!{q}('#delete-job').disabled", what="delete to be offered for the finished re-run")
        browser.evaluate(f"{q}('#delete-job').click(); {q}('#delete-job').click()")
        browser.wait_for(f"{q}('#submit-status').textContent === 'deleted {rerun_id}'", what="the re-run deleted")
        with self.assertRaises(urllib.error.HTTPError) as gone:
            cluster.get(f"/v1/jobs/{rerun_id}")
        self.assertEqual(gone.exception.code, 404)
        self.assertFalse(os.path.exists(os.path.join(cluster.dir, "out", rerun_id)))

        # The first form job as a zip: sprites, renders, sidecars and job.json.
        browser.evaluate(f"{q}('#jobs tr[data-job=\"{job_id}\"] button.open').click()")
        browser.wait_for(loaded_images(4, 32), what="the form job's gallery again")
        browser.evaluate(f"{q}('#archive').click()")
        browser.wait_for(f"Number({q}('#gallery').dataset.archiveBytes || 0) > 0", what="the zip download")
        names = zipfile.ZipFile(io.BytesIO(cluster.get(f"/v1/jobs/{job_id}/archive.zip"))).namelist()
        self.assertEqual(len([n for n in names if n.endswith(".sprite.png")]), 4)
        self.assertEqual(len([n for n in names if n.endswith(".json") and not n.endswith("job.json")]), 4)

        # Cancelled mid-job: tiles still to come say they stopped instead of waiting on.
        browser.evaluate(f"{q}('#manifest-text').value = {CANCEL_MANIFEST!r}")
        browser.evaluate(f"{q}('#submit-button').click()")
        browser.wait_for(f"{q}('#gallery .tile.running') !== null", what="an image sampling")
        browser.evaluate(f"{q}('#jobs tr.selected button.cancel').click()")
        browser.wait_for(f"{q}('#gallery .tile.stopped') !== null && "
                         f"{q}('#gallery .tile.running, #gallery .tile.queued') === null", what="the tiles to stop")

        browser.resize(390, 844, mobile=True)
        browser.evaluate("window.scrollTo(0, 0)")
        browser.screenshot(os.path.join(cluster.dir, "web-ui-phone.png"))
        self.assertLessEqual(browser.evaluate("document.documentElement.scrollWidth"), 390)

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
        self.assertEqual(browser.evaluate("sessionStorage.getItem('spriteforge.token')"), USER_TOKEN)
        self.assertIsNone(browser.evaluate("localStorage.getItem('spriteforge.token')"))

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

        # A viewer's token: jobs and images to look at, nothing to make, cancel or delete.
        browser.evaluate(f"document.querySelector('#token').value = '{VIEWER_TOKEN}'")
        browser.evaluate("document.querySelector('#token-save').click()")
        browser.wait_for("document.body.classList.contains('viewer')", what="the page to know the viewer's role")
        browser.wait_for(f"{row} !== null", what="the job row for the viewer")
        self.assertEqual(browser.evaluate("getComputedStyle(document.querySelector('#make-form')).display"), "none")
        self.assertTrue(browser.evaluate("document.querySelector('#submit-button').disabled"))
        self.assertEqual(browser.evaluate("getComputedStyle(document.querySelector('#delete-job')).display"), "none")
        errors = [e for e in browser.page_errors() if "401" not in e]  # the browser logs refused fetches
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
