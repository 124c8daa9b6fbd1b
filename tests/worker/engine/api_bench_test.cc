// spriteforge-bench's ControlNet and IP-Adapter measurements, on the tiny architecture: the
// random files it writes load through the engine's checks, and one process measures no
// controls first, then each ControlNet and the adapter against it.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace spriteforge::engine {
namespace {

struct BenchRun {
  int exit_code;
  std::string output;  // stdout and stderr
};

BenchRun Bench(const std::string& args) {
  const std::string command = std::string(SPRITEFORGE_BENCH_PATH) + " " + args + " 2>&1";
  BenchRun run{0, ""};
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) run.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST(Bench, MeasuresRandomControlNetsAndAnIpAdapterAgainstNoControlsInOneProcess) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "bench_controls";
  std::filesystem::remove_all(dir);
  const BenchRun write = Bench("--model builtin:tiny --write-controls " + dir.string());
  ASSERT_EQ(write.exit_code, 0) << write.output;
  for (const char* file : {"controlnet/controlnet-canny-sdxl-1.0/diffusion_pytorch_model.safetensors",
                           "controlnet/controlnet-canny-sdxl-1.0-small/config.json",
                           "ip-adapter/ip-adapter-plus_sdxl_vit-h.safetensors", "ip-adapter/image_encoder/model.safetensors"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / file)) << file;
  }

  const std::string json = (dir / "bench.json").string();
  const BenchRun run = Bench("--model builtin:tiny --device cpu --dtypes fp32 --batches 1 --size 64 --steps 1 --runs 1"
                        " --controls-set " + dir.string() + " --json " + json);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto report = nlohmann::json::parse(std::ifstream(json));
  const auto& rows = report["results"];
  ASSERT_EQ(rows.size(), 6u) << report.dump(1);
  const char* order[] = {"none", "controlnet-full", "controlnet-full-guess-mode", "controlnet-small", "ip-adapter-plus",
                         "controlnet-full+ip-adapter-plus"};
  const double targets[] = {0, 0.35, 0.35, 0.15, 0.05, 0};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["controls"], order[i]);
    EXPECT_FALSE(rows[i].contains("error")) << rows[i].dump();
    EXPECT_GT(rows[i].value("seconds_per_image", 0.0), 0) << rows[i].dump();
    EXPECT_EQ(rows[i].contains("overhead"), i > 0) << rows[i].dump();
    EXPECT_EQ(rows[i].value("overhead_target", 0.0), targets[i]) << rows[i].dump();
  }
}

}  // namespace
}  // namespace spriteforge::engine
