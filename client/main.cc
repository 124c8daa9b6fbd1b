// spriteforge: the command-line client.
//
//   spriteforge [--coordinator HOST:PORT] COMMAND ...
//     submit MANIFEST [--wait] [--quiet] [--idempotency-key KEY] [--model NAME]
//     watch JOB | status [JOB] [--json] | cancel JOB | workers [--json]
//     results JOB --out DIR [--renders]
//     pixelate IN.png --size WxH ... --out OUT.png | sheet DIR --out sheet.png
//
// The coordinator comes from --coordinator, else SPRITEFORGE_COORDINATOR, else
// 127.0.0.1:50051. pixelate and sheet work on local files and need no coordinator.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "commands.h"
#include "postprocess/commands.h"

namespace sc = spriteforge::client;

namespace {

constexpr char kUsage[] =
    "usage: spriteforge [--coordinator HOST:PORT] COMMAND ...\n"
    "  submit MANIFEST [--wait] [--quiet] [--idempotency-key KEY] [--model NAME]\n"
    "  watch JOB\n"
    "  status [JOB] [--json]\n"
    "  cancel JOB\n"
    "  workers [--json]\n"
    "  results JOB --out DIR [--renders]\n"
    "  pixelate IN.png --size WxH [--method area|majority] [--palette pico8|gameboy|nes|FILE]\n"
    "           [--colors N] [--quantizer median_cut|kmeans] [--dither none|bayer|fs]\n"
    "           [--transparent] [--tolerance X] [--crop] [--padding N] --out OUT.png\n"
    "  sheet DIR --out sheet.png [--tight] [--columns N]\n"
    "coordinator: --coordinator, else $SPRITEFORGE_COORDINATOR, else 127.0.0.1:50051\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env = std::getenv("SPRITEFORGE_COORDINATOR");
  std::string coordinator = env && *env ? env : "127.0.0.1:50051";
  if (args.size() >= 2 && args[0] == "--coordinator") {
    coordinator = args[1];
    args.erase(args.begin(), args.begin() + 2);
  } else if (!args.empty() && args[0].rfind("--coordinator=", 0) == 0) {
    coordinator = args[0].substr(14);
    args.erase(args.begin());
  }
  if (args.empty() || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());

  if (command == "pixelate") return spriteforge::postprocess::PixelateCommand(args);
  if (command == "sheet") return spriteforge::postprocess::SheetCommand(args);

  using Handler = int (*)(sc::Stub&, const sc::Args&);
  const std::map<std::string, Handler> remote = {{"submit", sc::Submit},   {"watch", sc::Watch},
                                                 {"status", sc::Status},   {"cancel", sc::Cancel},
                                                 {"workers", sc::Workers}, {"results", sc::Results}};
  auto handler = remote.find(command);
  if (handler == remote.end()) {
    std::fprintf(stderr, "spriteforge: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel(coordinator, grpc::InsecureChannelCredentials(), channel_args);
  auto stub = spriteforge::v1::SpriteForge::NewStub(channel);
  return handler->second(*stub, args);
}
