// Runs a libFuzzer target without libFuzzer (any compiler): feeds it the seed corpus given
// on the command line plus deterministic mutations of each seed (truncations, bit flips,
// byte overwrites, random lengths), so every CI run exercises the target. A crash fails
// the test. Usage: <target> [--mutations N] SEED_FILE...
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Feed(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  int mutations = 20000;
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::atoi(argv[++i]);
      continue;
    }
    std::ifstream in(arg, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read seed %s\n", arg.c_str());
      return 2;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    seeds.push_back(ss.str());
  }
  if (seeds.empty()) seeds.push_back("");
  std::mt19937_64 rng(12345);
  size_t runs = 0;
  for (const std::string& seed : seeds) {
    Feed(seed);
    for (int m = 0; m < mutations; ++m, ++runs) {
      std::string s = seed;
      switch (rng() % 5) {
        case 0:  // truncate
          s.resize(s.empty() ? 0 : rng() % s.size());
          break;
        case 1:  // flip bits
          for (int k = 0; k < 4 && !s.empty(); ++k) s[rng() % s.size()] ^= static_cast<char>(1 << (rng() % 8));
          break;
        case 2:  // overwrite bytes with digits, quotes and brackets (JSON-shaped damage)
          for (int k = 0; k < 4 && !s.empty(); ++k) s[rng() % s.size()] = "0123456789\"[]{},:-"[rng() % 18];
          break;
        case 3:  // random header length
          if (s.size() >= 8) for (int k = 0; k < 8; ++k) s[k] = static_cast<char>(rng() & 0xFF);
          break;
        case 4:  // random bytes
          s.assign(rng() % 64, '\0');
          for (char& c : s) c = static_cast<char>(rng() & 0xFF);
          break;
      }
      Feed(s);
    }
  }
  std::printf("replay: %zu inputs from %zu seeds, no crash\n", runs + seeds.size(), seeds.size());
  return 0;
}
