"""A one-line progress bar for a job: images done of total, rate, ETA and the running
batch's denoising step."""


class ProgressBar:
    def __init__(self, out, width=30):
        self.out = out
        self.width = width
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.last = ""

    def line(self, job, step=None):
        counts = job.get("counts", {})
        total, done = counts.get("total", 0), counts.get("done", 0)
        filled = int(self.width * done / total) if total else 0
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} images"
        if counts.get("failed"):
            text += f", {counts['failed']} failed"
        if job.get("images_per_second"):
            text += f", {job['images_per_second'] * 60:.1f}/min"
        if job.get("eta_seconds") and job.get("state") not in ("JOB_DONE", "JOB_FAILED", "JOB_CANCELLED"):
            text += f", ETA {job['eta_seconds']:.0f} s"
        if step:
            text += f" (step {step['step']}/{step['total_steps']})"
        return text

    def update(self, job, step=None):
        text = self.line(job, step)
        if text == self.last:
            return
        self.last = text
        # A terminal gets one line redrawn; a log gets a line per change of images done.
        if self.tty:
            self.out.write("\r" + text.ljust(79))
        elif step is None:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self, job):
        if job is None:
            return
        state = job.get("state", "").replace("JOB_", "").lower()
        text = self.line(job) + f": {state}"
        self.out.write(("\r" + text.ljust(79) if self.tty else text) + "\n")
        self.out.flush()
