"""Command line: python3 -m spriteforge_client [--url URL] [--token TOKEN] [--ca-cert PEM] COMMAND ...

  submit MANIFEST [--wait] [--idempotency-key KEY] [--model NAME]   prints the job id
  watch JOB                                                         progress bar until done
  status [JOB]                                                      a job or the recent jobs
  cancel JOB
  results JOB --out DIR                                             downloads the images
  workers
"""

import argparse
import json
import os
import sys

from .client import ApiError, Client


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m spriteforge_client")
    parser.add_argument("--url", default=os.environ.get("SPRITEFORGE_URL", "http://127.0.0.1:8080"),
                        help="the coordinator's HTTP address, http:// or https:// (env SPRITEFORGE_URL)")
    parser.add_argument("--token", default=os.environ.get("SPRITEFORGE_TOKEN"),
                        help="token for coordinators with --auth (env SPRITEFORGE_TOKEN keeps it out of process lists)")
    parser.add_argument("--ca-cert", default=os.environ.get("SPRITEFORGE_CA_CERT"),
                        help="PEM CA that signed an https:// coordinator's certificate (env SPRITEFORGE_CA_CERT)")
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit")
    submit.add_argument("manifest")
    submit.add_argument("--wait", action="store_true")
    submit.add_argument("--idempotency-key")
    submit.add_argument("--model")
    commands.add_parser("watch").add_argument("job")
    commands.add_parser("status").add_argument("job", nargs="?")
    commands.add_parser("cancel").add_argument("job")
    results = commands.add_parser("results")
    results.add_argument("job")
    results.add_argument("--out", required=True)
    commands.add_parser("workers")
    args = parser.parse_args(argv)

    client = Client(args.url, token=args.token, ca_cert=args.ca_cert)
    try:
        if args.command == "submit":
            if not os.path.isfile(args.manifest):
                raise ApiError(0, "INVALID_ARGUMENT", f"no such manifest file: {args.manifest}")
            job = client.submit(args.manifest, idempotency_key=args.idempotency_key, model=args.model)
            print(job["id"])
            if args.wait:
                job = client.watch(job["id"])
                return 0 if job["state"] == "JOB_DONE" else 1
        elif args.command == "watch":
            job = client.watch(args.job)
            return 0 if job["state"] == "JOB_DONE" else 1
        elif args.command == "status":
            print(json.dumps(client.job(args.job) if args.job else client.jobs(), indent=2))
        elif args.command == "cancel":
            print(client.cancel(args.job)["state"])
        elif args.command == "results":
            for path in client.download(args.job, args.out):
                print(path)
        elif args.command == "workers":
            print(json.dumps(client.workers(), indent=2))
    except ApiError as e:
        print(f"spriteforge_client: error: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
