// The worker's folders and model as Register lists them: each file and model folder with the
// SHA-256 of its bytes (a folder: of its weights file; the model: of its checkpoint file or
// its UNet's weights), remembered in the cache folder so a second start reads no file again,
// and read anew once a file changes.
#include "worker/model_files.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/sha256.h"

namespace spriteforge::worker {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("model_files_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void Write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::map<std::string, std::string> Hashes(const std::vector<v1::LoraFile>& files) {
  std::map<std::string, std::string> out;
  for (const v1::LoraFile& f : files) out[f.name()] = f.sha256();
  return out;
}

TEST(ModelFilesTest, FilesAndFoldersCarryTheirSha256) {
  const std::string dir = FreshDir("list"), cache = FreshDir("list_cache");
  Write(fs::path(dir) / "pixel-art.safetensors", "lora bytes");
  Write(fs::path(dir) / "notes.txt", "not a model");
  Write(fs::path(dir) / "canny" / "config.json", "{}");
  Write(fs::path(dir) / "canny" / "diffusion_pytorch_model.safetensors", "controlnet weights");
  Write(fs::path(dir) / "encoder" / "config.json", "{}");
  Write(fs::path(dir) / "encoder" / "model.safetensors", "encoder weights");
  Write(fs::path(dir) / "bare" / "config.json", "{}");  // no weights: listed, no hash
  FileHashes hashes(FileHashesPath(cache));
  auto files = Hashes(ListLoraFolder(dir, &hashes));
  EXPECT_EQ(files, (std::map<std::string, std::string>{{"pixel-art", Sha256Hex("lora bytes")}}));
  auto folders = Hashes(ListModelFolders(dir, &hashes));
  EXPECT_EQ(folders, (std::map<std::string, std::string>{{"bare", ""},
                                                         {"canny", Sha256Hex("controlnet weights")},
                                                         {"encoder", Sha256Hex("encoder weights")}}));
  EXPECT_EQ(hashes.hashed(), 3);
  // Without a FileHashes nothing is read: names and sizes only.
  EXPECT_EQ(ListLoraFolder(dir).front().sha256(), "");
  EXPECT_EQ(ListLoraFolder(dir).front().size_bytes(), 10u);
}

TEST(ModelFilesTest, TheModelCarriesTheHashOfItsWeights) {
  const std::string dir = FreshDir("model"), cache = FreshDir("model_cache");
  FileHashes hashes(FileHashesPath(cache));
  // A single-file checkpoint: the file's bytes.
  const fs::path file = fs::path(dir) / "pixel-xl.safetensors";
  Write(file, "checkpoint bytes");
  v1::LoraFile single = ModelFile("pixel-xl", file.string(), &hashes);
  EXPECT_EQ(single.name(), "pixel-xl");
  EXPECT_EQ(single.size_bytes(), 16u);
  EXPECT_EQ(single.sha256(), Sha256Hex("checkpoint bytes"));
  // A diffusers folder: its UNet's weights file, the one the engine loads (the fp32 file
  // before the .fp16 one); the size counts all its .safetensors files.
  const fs::path folder = fs::path(dir) / "sdxl-folder";
  Write(folder / "model_index.json", "{}");
  Write(folder / "unet" / "config.json", "{}");
  Write(folder / "unet" / "diffusion_pytorch_model.fp16.safetensors", "unet half");
  Write(folder / "vae" / "diffusion_pytorch_model.safetensors", "vae");
  v1::LoraFile half = ModelFile("sdxl", folder.string(), &hashes);
  EXPECT_EQ(half.sha256(), Sha256Hex("unet half"));
  EXPECT_EQ(half.size_bytes(), 12u);
  Write(folder / "unet" / "diffusion_pytorch_model.safetensors", "unet full");
  v1::LoraFile full = ModelFile("sdxl", folder.string(), &hashes);
  EXPECT_EQ(full.name(), "sdxl");
  EXPECT_EQ(full.sha256(), Sha256Hex("unet full"));
  EXPECT_EQ(full.size_bytes(), 21u);
  // A folder without UNet weights, builtin:* and a missing path: named, no hash.
  Write(fs::path(dir) / "bare" / "model_index.json", "{}");
  EXPECT_EQ(ModelFile("bare", (fs::path(dir) / "bare").string(), &hashes).sha256(), "");
  v1::LoraFile builtin = ModelFile("tiny-sdxl", "builtin:tiny", &hashes);
  EXPECT_EQ(builtin.name(), "tiny-sdxl");
  EXPECT_EQ(builtin.sha256(), "");
  EXPECT_EQ(builtin.size_bytes(), 0u);
  EXPECT_EQ(ModelFile("gone", (fs::path(dir) / "gone.safetensors").string(), &hashes).sha256(), "");
  // Without a FileHashes nothing is read.
  EXPECT_EQ(ModelFile("pixel-xl", file.string()).sha256(), "");
  EXPECT_EQ(ModelFile("pixel-xl", file.string()).size_bytes(), 16u);
  EXPECT_EQ(hashes.hashed(), 3);
}

TEST(ModelFilesTest, TheStartHashesTheModelIntoTheCache) {
  const std::string dir = FreshDir("model_start"), cache = FreshDir("model_start_cache");
  const fs::path unet = fs::path(dir) / "sdxl" / "unet" / "diffusion_pytorch_model.safetensors";
  Write(unet, "unet bytes");
  Write(fs::path(dir) / "loras" / "slime.safetensors", "lora bytes");
  {
    FileHashes first(FileHashesPath(cache));
    // The worker's start: the model and its folders, hashed and saved.
    HashModelFolders({(fs::path(dir) / "loras").string()}, &first, (fs::path(dir) / "sdxl").string());
    EXPECT_EQ(first.hashed(), 2);
  }
  // The connection's Register reads nothing again.
  FileHashes second(FileHashesPath(cache));
  EXPECT_EQ(ModelFile("sdxl", (fs::path(dir) / "sdxl").string(), &second).sha256(), Sha256Hex("unet bytes"));
  EXPECT_EQ(second.hashed(), 0);
}

TEST(ModelFilesTest, ASecondStartUsesTheRememberedHashesUntilAFileChanges) {
  const std::string dir = FreshDir("cache"), cache = FreshDir("cache_cache");
  const fs::path lora = fs::path(dir) / "slime.safetensors";
  Write(lora, "first bytes");
  Write(fs::path(dir) / "other.safetensors", "other bytes");
  {
    FileHashes first(FileHashesPath(cache));
    HashModelFolders({dir}, &first);  // the worker's start: hashes and saves
    EXPECT_EQ(first.hashed(), 2);
  }
  ASSERT_TRUE(fs::exists(FileHashesPath(cache)));
  // New bytes of the same size under the old modification time: only the cache can answer
  // with the old hash, so its answer shows that nothing was read.
  const auto mtime = fs::last_write_time(lora);
  Write(lora, "other bytes");
  fs::last_write_time(lora, mtime);
  {
    FileHashes second(FileHashesPath(cache));
    EXPECT_EQ(Hashes(ListLoraFolder(dir, &second))["slime"], Sha256Hex("first bytes"));
    EXPECT_EQ(second.hashed(), 0);
  }
  // A file changed in place (another modification time) is read again.
  fs::last_write_time(lora, mtime + std::chrono::seconds(5));
  FileHashes third(FileHashesPath(cache));
  EXPECT_EQ(Hashes(ListLoraFolder(dir, &third))["slime"], Sha256Hex("other bytes"));
  EXPECT_EQ(third.hashed(), 1);
  // A damaged cache file is no error: its files are read again.
  std::ofstream(FileHashesPath(cache), std::ios::trunc) << "garbage\tline\n";
  FileHashes fourth(FileHashesPath(cache));
  EXPECT_EQ(Hashes(ListLoraFolder(dir, &fourth))["other"], Sha256Hex("other bytes"));
  EXPECT_EQ(fourth.hashed(), 2);
}

}  // namespace
}  // namespace spriteforge::worker
