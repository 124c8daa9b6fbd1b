// The command line of spriteforge-coordinator: the flags of a serving coordinator, in the
// units an operator writes (seconds, minutes, MiB, GB), and the `backup` command. Every
// default here is the one --help shows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "common/manifest.h"
#include "coordinator/core/coordinator_options.h"

namespace spriteforge::coordinator {

struct CoordinatorFlags {
  // Where it serves.
  std::string listen;           // gRPC for clients and workers, loopback unless secured
  std::string insecure_listen;  // instead of listen: any address, plaintext
  std::string worker_listen;    // workers on a port of their own ("": they share listen)
  std::string http;
  std::vector<std::string> http_host_allow;
  std::string ready_file;

  // What it keeps.
  std::string db;  // a SQLite file or a postgresql:// URL
  std::string output;
  std::string blob_dir;  // "": blobs beside a SQLite --db (beside --output with PostgreSQL)

  // Scheduling.
  int lease_seconds = 15;
  int worker_retention_minutes = 60;
  int max_attempts = 3;
  int max_prefetch = 1;
  double unserved_model_timeout_seconds = 0;  // 0: wait forever
  int max_images_per_job = ManifestLimits().max_images_per_job;
  // Checking a result decodes its PNGs: the costliest work per image, spread over the cores.
  int result_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // Uploads: their size, their share of the disk (results keep the rest) and their pace.
  uint64_t max_lora_mb = 2048;
  uint64_t max_image_mb = 32;
  double blob_max_gb = 100;
  uint64_t owner_upload_mb = 20480;
  int uploads_per_minute = 600;
  double blob_grace_minutes = 60;
  int upload_idle_seconds = 60;

  // Who may call.
  std::string tls_cert, tls_key, tls_client_ca;
  std::vector<std::string> worker_cert_match;
  std::string auth;  // the token table's file
  int submits_per_minute = 120;

  // Several coordinators on one PostgreSQL database.
  int leader_lease_seconds = 5;

  LogOptions log;
};

// The core's settings these flags give: units converted, and the blob folder beside a
// SQLite --db unless --blob-dir names one.
CoordinatorOptions CoreOptionsOf(const CoordinatorFlags& flags);

struct BackupFlags {
  std::string db;
  std::string out;
};

struct CommandLine {
  CoordinatorFlags serve;
  std::optional<BackupFlags> backup;  // `spriteforge-coordinator backup ...`
};

// Fills `command` from argv (and SPRITEFORGE_<FLAG> for the serving flags). Returns -1 to
// go on, else the exit code: 0 after --help or --version, 2 after a usage error (printed).
int ParseCommandLine(int argc, const char* const* argv, CommandLine* command);

}  // namespace spriteforge::coordinator
