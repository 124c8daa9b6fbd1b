#include "coordinator/app/coordinator_flags.h"

#include <filesystem>

#include "common/cli.h"
#include "coordinator/store/store.h"

namespace spriteforge::coordinator {
namespace {

void AddAddressFlags(CLI::App& app, CoordinatorFlags* f) {
  app.add_option("--listen", f->listen,
                 "gRPC address for clients and workers, HOST:PORT (port 0: any free port); loopback only "
                 "without --tls-cert or --auth");
  app.add_option("--insecure-listen", f->insecure_listen,
                 "Instead of --listen: serve any address in plaintext, without TLS or tokens (private networks); "
                 "lets --http serve other machines without tokens too");
  app.add_option("--http", f->http,
                 "Address of the web page, the HTTP API, /metrics, /stats and /healthz, HOST:PORT (port 0: any free "
                 "port); loopback only without --auth")
      ->required();
  app.add_option("--http-host-allow", f->http_host_allow,
                 "Host names the HTTP port answers to besides IP addresses, localhost, this machine's name and the "
                 "--http address (other names are refused: browsers on a rebound DNS name), comma-separated")
      ->delimiter(',');
  app.add_option("--db", f->db,
                 "Database of jobs and items: a SQLite file (created; reopened after a restart) or a "
                 "postgresql://USER@HOST[:PORT]/DB URL several coordinators can share (one leads, the others stand by)")
      ->required();
  app.add_option("--output", f->output, "Folder the results are written to (created)")->required();
}

void AddSchedulingFlags(CLI::App& app, CoordinatorFlags* f) {
  app.add_option("--lease-seconds", f->lease_seconds,
                 "A batch whose worker stays silent this long returns to the queue")
      ->check(CLI::Range(1, 86400));
  app.add_option("--worker-retention-minutes", f->worker_retention_minutes,
                 "A disconnected worker is forgotten (worker list, /metrics, database) once unheard this long; "
                 "its results stay")
      ->check(CLI::Range(1, 525600));
  app.add_option("--max-attempts", f->max_attempts, "Tries of an item before it fails for good")
      ->check(CLI::Range(1, 100));
  app.add_option("--max-prefetch", f->max_prefetch,
                 "Batches queued ahead per worker, beyond the one it renders (capped by what it asks for)")
      ->check(CLI::Range(0, 4));
  app.add_option("--unserved-model-timeout", f->unserved_model_timeout_seconds,
                 "Seconds a job waits for a worker serving its model before its queued items fail "
                 "(0: wait forever)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--worker-listen", f->worker_listen,
                 "Serve workers on this HOST:PORT of their own; client calls then take small messages only");
}

void AddUploadFlags(CLI::App& app, CoordinatorFlags* f) {
  app.add_option("--blob-dir", f->blob_dir,
                 "Folder of files uploaded with jobs, by content hash (default: blobs beside --db)");
  app.add_option("--max-lora-mb", f->max_lora_mb, "Largest LoRA a client may upload, in MiB")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-image-mb", f->max_image_mb, "Largest start image a client may upload, in MiB")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--blob-max-gb", f->blob_max_gb,
                 "Most the uploaded files may take of --blob-dir, in GB; an upload that would pass it is refused "
                 "(0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--owner-upload-mb", f->owner_upload_mb,
                 "Uploaded files each client may hold, in MiB, unless its token sets max_upload_mb (0: no limit)");
  app.add_option("--uploads-per-minute", f->uploads_per_minute,
                 "Uploads per minute per client unless its token sets its own (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--blob-grace-minutes", f->blob_grace_minutes,
                 "An uploaded file no unfinished job names is deleted once unused this long")
      ->check(CLI::Range(1.0, 525600.0));
  app.add_option("--upload-idle-seconds", f->upload_idle_seconds,
                 "An upload that sends nothing this long is cancelled and its partial file removed")
      ->check(CLI::Range(1, 86400));
}

void AddCapacityFlags(CLI::App& app, CoordinatorFlags* f) {
  app.add_option("--ready-file", f->ready_file, "Written with the bound addresses, as JSON, once serving");
  app.add_option("--max-images-per-job", f->max_images_per_job, "Largest job a manifest may describe, in images")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--result-threads", f->result_threads,
                 "Threads that check and store results (default: one per core)")
      ->check(CLI::Range(1, 256));
}

void AddSecurityFlags(CLI::App& app, CoordinatorFlags* f) {
  app.add_option("--tls-cert", f->tls_cert, "PEM certificate chain: TLS on the gRPC and HTTP ports (SIGHUP reloads)");
  app.add_option("--tls-key", f->tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", f->tls_client_ca, "PEM CA whose client certificates workers must present");
  app.add_option("--worker-cert-match", f->worker_cert_match,
                 "Which client certificates are workers': OU=NAME, CN=NAME, O=NAME, URI:NAME or DNS:NAME (repeatable; "
                 "with --auth a certificate admits a worker only if it matches one)");
  app.add_option("--auth", f->auth, "YAML token table: names, tokens, roles, quotas (docs/security.md; SIGHUP reloads)");
  app.add_option("--submits-per-minute", f->submits_per_minute,
                 "SubmitJob calls per minute per client unless its token sets its own (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--leader-lease-seconds", f->leader_lease_seconds,
                 "With PostgreSQL: how long the leader's lease lasts unrenewed (renewed every second); a standby "
                 "takes over this long after the leader stops")
      ->check(CLI::Range(2, 600));
}

// `backup`: its own flags, help and --version; the serving flags do not apply to it.
CLI::App* AddBackupCommand(CLI::App& app, BackupFlags* backup) {
  CLI::App* command = app.add_subcommand(
      "backup",
      "spriteforge-coordinator backup: a consistent copy of the database, also while a coordinator runs on it "
      "(SQLite's online backup; the copy is integrity-checked before it is renamed into place).");
  command->set_version_flag("--version", std::string("spriteforge-coordinator backup ") + cli::Version());
  command->add_option("--db", backup->db, "The coordinator's database")->required();
  command->add_option("--out", backup->out, "The copy to write")->required();
  // The footer lists it with its flags; CLI11's own list of subcommands stays out of --help.
  command->group("");
  command->preparse_callback([&app](size_t) {
    for (CLI::Option* option : app.get_options()) option->required(false)->envname("");
  });
  return command;
}

}  // namespace

CoordinatorOptions CoreOptionsOf(const CoordinatorFlags& flags) {
  CoordinatorOptions options;
  options.output_dir = flags.output;
  options.lease_ms = flags.lease_seconds * 1000LL;
  options.worker_retention_ms = flags.worker_retention_minutes * 60000LL;
  options.max_attempts = flags.max_attempts;
  options.max_prefetch = flags.max_prefetch;
  options.unserved_model_timeout_ms = static_cast<int64_t>(flags.unserved_model_timeout_seconds * 1000);
  options.limits.max_images_per_job = flags.max_images_per_job;
  options.result_threads = flags.result_threads;
  options.upload_limits.max_lora_bytes = flags.max_lora_mb << 20;
  options.upload_limits.max_image_bytes = flags.max_image_mb << 20;
  options.blob_max_bytes = static_cast<uint64_t>(flags.blob_max_gb * 1e9);
  options.owner_upload_bytes = flags.owner_upload_mb << 20;
  options.uploads_per_minute = flags.uploads_per_minute;
  options.blob_grace_ms = static_cast<int64_t>(flags.blob_grace_minutes * 60000);
  options.upload_idle_ms = flags.upload_idle_seconds * 1000LL;
  options.blob_dir = flags.blob_dir;
  if (options.blob_dir.empty() && !IsPostgresUrl(flags.db)) {
    options.blob_dir = (std::filesystem::absolute(flags.db).parent_path() / "blobs").string();
  }  // with PostgreSQL: "blobs" beside --output, so coordinators sharing that folder share it
  return options;
}

int ParseCommandLine(int argc, const char* const* argv, CommandLine* command) {
  CLI::App app("spriteforge-coordinator: accepts sprite jobs from clients, hands batches to workers, "
               "stores the results.",
               "spriteforge-coordinator");
  cli::Configure(app);
  BackupFlags backup_flags;
  CLI::App* backup = AddBackupCommand(app, &backup_flags);
  app.footer("Commands:\n  backup --db FILE --out FILE  A consistent copy of the database, also while a "
             "coordinator runs on it (see spriteforge-coordinator backup --help)");
  CoordinatorFlags* flags = &command->serve;
  AddAddressFlags(app, flags);
  AddSchedulingFlags(app, flags);
  AddUploadFlags(app, flags);
  AddCapacityFlags(app, flags);
  AddSecurityFlags(app, flags);
  cli::AddLogFlags(app, &flags->log);
  cli::ReadEnvironment(app);
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  if (backup->parsed()) command->backup = backup_flags;
  return -1;
}

}  // namespace spriteforge::coordinator
