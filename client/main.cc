// spriteforge: the command-line client.
//
//   spriteforge [--coordinator HOST:PORT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
//               [--token TOKEN] COMMAND ...
//     submit MANIFEST|WORKFLOW.json [--wait] [--quiet] [--idempotency-key KEY] [--model NAME]
//            [--set NODE.INPUT=VALUE ...] [--model-map CHECKPOINT=MODEL ...] [--count N]
//     watch JOB | status [JOB] [--json] | cancel JOB | workers [--json]
//     results JOB --out DIR [--renders]
//     pixelate IN.png --size WxH ... --out OUT.png | sheet DIR --out sheet.png
//     pose list | pose show SET --out DIR [--size WxH] | canny IN.png --out OUT.png
//
// `spriteforge --help` and `spriteforge COMMAND --help` describe every flag. The
// coordinator comes from --coordinator, else SPRITEFORGE_COORDINATOR, else 127.0.0.1:50051.
// The token comes from --token, else SPRITEFORGE_TOKEN. pixelate, sheet, pose and canny work
// on local files and need no coordinator.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <functional>
#include <string>

#include "client/commands.h"
#include "client/sprite_commands.h"
#include "common/cli.h"
#include "common/rpc/channel.h"

namespace sc = spriteforge::client;
namespace sp = spriteforge::postprocess;

namespace {

void AddWatchFlags(CLI::App& command, sc::WatchArgs* watch) {
  command.add_flag("--quiet", watch->quiet, "Print only the final line, not the progress");
  command.add_option("--reconnect-for", watch->reconnect_seconds,
                     "Seconds to keep reconnecting to a coordinator that went away")
      ->check(CLI::NonNegativeNumber);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("spriteforge: submit sprite jobs to a coordinator, follow them, fetch results; "
               "make sprites from local images.",
               "spriteforge");
  spriteforge::cli::Configure(app);
  app.require_subcommand(1);
  std::string coordinator = "127.0.0.1:50051";
  app.add_option("--coordinator", coordinator, "The coordinator's gRPC address, HOST:PORT; several, comma-separated, for coordinators "
                 "sharing one database (the client uses the one that leads)")
      ->envname("SPRITEFORGE_COORDINATOR");
  spriteforge::ChannelSecurity security;
  spriteforge::AddTlsFlags(app, security);
  int wait_for = 10;
  app.add_option("--wait-for", wait_for, "Seconds to wait for a coordinator that is starting (nothing listens "
                                         "at its address yet) before a command fails")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--token", security.token, "Token for coordinators with --auth (the environment keeps it "
                                            "out of process listings)")
      ->envname("SPRITEFORGE_TOKEN");

  // The command chosen: remote ones get a stub, local ones none.
  std::function<int(sc::Stub&)> remote;
  std::function<int()> local;

  sc::SubmitArgs submit;
  CLI::App* cmd = app.add_subcommand("submit", "Submit a job manifest (YAML or JSON) or a ComfyUI workflow (API format); "
                                               "prints the job id");
  cmd->add_option("MANIFEST", submit.manifest, "The manifest or workflow file")->required();
  cmd->add_flag("--wait", submit.wait, "Follow the job until it finishes; exit 0 when every image is done");
  cmd->add_option("--idempotency-key", submit.idempotency_key,
                  "Submitting the same key again returns the existing job");
  cmd->add_option("--model", submit.model, "Replaces the manifest's model");
  cmd->add_option("--set", submit.settings, "A ComfyUI workflow's input, NODE.INPUT=VALUE (6.seed=7); repeatable");
  cmd->add_option("--model-map", submit.model_maps,
                  "A ComfyUI checkpoint's model, CHECKPOINT=MODEL (sd_xl_base_1.0.safetensors=tiny-sdxl); repeatable");
  cmd->add_option("--count", submit.count, "Images each SaveImage of a ComfyUI workflow makes")->check(CLI::PositiveNumber);
  AddWatchFlags(*cmd, &submit.watch);
  cmd->callback([&] { remote = [&](sc::Stub& stub) { return sc::Submit(stub, submit); }; });

  sc::WatchArgs watch;
  cmd = app.add_subcommand("watch", "Follow a job's progress until it finishes; exit 0 when every image is done");
  cmd->add_option("JOB", watch.job_id, "The job id")->required();
  AddWatchFlags(*cmd, &watch);
  cmd->callback([&] { remote = [&](sc::Stub& stub) { return sc::Watch(stub, watch); }; });

  sc::StatusArgs status;
  cmd = app.add_subcommand("status", "A job's state, counts and running items; without JOB, every job");
  cmd->add_option("JOB", status.job_id, "The job id");
  cmd->add_flag("--json", status.json, "Print JSON");
  cmd->callback([&] { remote = [&](sc::Stub& stub) { return sc::Status(stub, status); }; });

  std::string cancel_job;
  cmd = app.add_subcommand("cancel", "Cancel a job's queued and running items");
  cmd->add_option("JOB", cancel_job, "The job id")->required();
  cmd->callback([&] { remote = [&](sc::Stub& stub) { return sc::Cancel(stub, cancel_job); }; });

  bool workers_json = false;
  cmd = app.add_subcommand("workers", "The workers: device, memory, throughput");
  cmd->add_flag("--json", workers_json, "Print JSON");
  cmd->callback([&] { remote = [&](sc::Stub& stub) { return sc::Workers(stub, workers_json); }; });

  sc::ResultsArgs results;
  cmd = app.add_subcommand("results", "Download a job's images, sidecars and job.json");
  cmd->add_option("JOB", results.job_id, "The job id")->required();
  cmd->add_option("--out", results.out, "Folder to write into (created)")->required();
  cmd->add_flag("--renders", results.renders, "Also the raw renders when the job made sprites");
  cmd->callback([&] { remote = [&](sc::Stub& stub) { return sc::Results(stub, results); }; });

  sp::PixelateArgs pixelate;
  cmd = app.add_subcommand("pixelate", "Turn a local image into a pixel-art sprite (docs/postprocess.md)");
  cmd->add_option("IN", pixelate.in, "The input PNG")->required();
  cmd->add_option("--out", pixelate.out, "The sprite PNG to write")->required();
  cmd->add_option("--size", pixelate.size, "The sprite's size, WxH")->required();
  cmd->add_option("--method", pixelate.method, "Downscaling: area or majority (default area)");
  cmd->add_option("--palette", pixelate.palette, "pico8, gameboy, nes, or a .hex/.gpl/.png palette file");
  cmd->add_option("--colors", pixelate.colors, "Reduce to N colours (without --palette)");
  cmd->add_option("--quantizer", pixelate.quantizer, "For --colors: median_cut or kmeans");
  cmd->add_option("--dither", pixelate.dither, "none, bayer or fs (Floyd-Steinberg)");
  cmd->add_flag("--transparent", pixelate.transparent, "Make the background transparent (flood fill from the edges)");
  cmd->add_option("--tolerance", pixelate.tolerance, "Colour distance the background flood fill accepts");
  cmd->add_flag("--crop", pixelate.crop, "Crop to the opaque pixels");
  cmd->add_option("--padding", pixelate.padding, "Transparent pixels around the cropped sprite");
  cmd->callback([&] { local = [&] { return sp::PixelateCommand(pixelate); }; });

  sp::SheetArgs sheet;
  cmd = app.add_subcommand("sheet", "Pack a folder's PNGs, in item order, into a sheet and a TexturePacker atlas");
  cmd->add_option("DIR", sheet.dir, "The folder of frames")->required();
  cmd->add_option("--out", sheet.out, "The sheet PNG to write; the atlas goes beside it as .json")->required();
  cmd->add_flag("--tight", sheet.tight, "Shelf packing for frames of mixed sizes instead of a grid");
  cmd->add_option("--columns", sheet.columns, "Grid columns (0: square-ish)")->check(CLI::NonNegativeNumber);
  cmd->callback([&] { local = [&] { return sp::SheetCommand(sheet); }; });

  cmd = app.add_subcommand("pose", "Pose sets for openpose ControlNets (docs/postprocess.md)");
  cmd->require_subcommand(1);
  cmd->add_subcommand("list", "The built-in pose sets")->callback([&] { local = [] { return sp::PoseListCommand(); }; });
  sp::PoseShowArgs pose_show;
  CLI::App* sub = cmd->add_subcommand("show", "Draw a pose set's control images, one PNG per pose");
  sub->add_option("SET", pose_show.set, "builtin:NAME, a pose JSON file or a folder of them")->required();
  sub->add_option("--out", pose_show.out, "Folder to write into (created)")->required();
  sub->add_option("--size", pose_show.size, "Image size, WxH or N (default 512)");
  sub->callback([&] { local = [&] { return sp::PoseShowCommand(pose_show); }; });

  sp::CannyArgs canny;
  cmd = app.add_subcommand("canny", "A canny edge map of a local image, as ControlNet's canny preprocessor makes it");
  cmd->add_option("IN", canny.in, "The input PNG")->required();
  cmd->add_option("--out", canny.out, "The edge map PNG to write")->required();
  cmd->add_option("--low", canny.low, "Gradients above this continue an edge (default 100)");
  cmd->add_option("--high", canny.high, "Gradients above this start an edge (default 200)");
  cmd->callback([&] { local = [&] { return sp::CannyCommand(canny); }; });

  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  if (local) return local();
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(256 << 20);
  // A watch reconnects to a restarted coordinator within about two seconds.
  channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto addresses = spriteforge::SplitCoordinatorAddresses(coordinator);
  if (!addresses.ok()) {
    std::fprintf(stderr, "spriteforge: error: %s\n", std::string(addresses.status().message()).c_str());
    return 2;
  }
  if (addresses->size() == 1) sc::WaitForListener(addresses->front(), wait_for);
  // Several coordinators (one leads, the others stand by): the one that leads now, waiting
  // out a failover for up to the reconnect time.
  auto channel = spriteforge::DialLeader(*addresses, security, channel_args, std::chrono::seconds(20));
  if (!channel.ok()) {
    std::fprintf(stderr, "spriteforge: error: %s\n", std::string(channel.status().message()).c_str());
    return 2;
  }
  auto stub = spriteforge::v1::SpriteForge::NewStub(*channel);
  // A watch that loses its coordinator looks for the leader among all of them again.
  std::vector<std::unique_ptr<spriteforge::v1::SpriteForge::Stub>> leaders;
  if (addresses->size() > 1) {
    auto leader = [&]() -> spriteforge::v1::SpriteForge::Stub* {
      auto found = spriteforge::DialLeader(*addresses, security, channel_args, std::chrono::seconds(5));
      if (!found.ok()) return stub.get();
      leaders.push_back(spriteforge::v1::SpriteForge::NewStub(*found));
      return leaders.back().get();
    };
    watch.leader = leader;
    submit.watch.leader = leader;
  }
  return remote(*stub);
}
