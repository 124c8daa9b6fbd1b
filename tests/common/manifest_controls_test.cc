// Manifest fields for consistent sprite sets: ControlNets (`controls`), an IP-Adapter
// (`reference`) and `set`, the expansion of one item into a named frame per pose; each bad
// value is one error naming file, line and field.
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/manifest.h"

namespace spriteforge {
namespace {

uint64_t Draw() { return 7; }

// Stands in for the client's upload: the files of an uploaded ControlNet folder and
// IP-Adapter (with image_encoder beside it) and 128x128 pictures.
absl::StatusOr<ManifestFile> Files(const std::string& path, ManifestFileKind kind) {
  const std::map<std::pair<std::string, ManifestFileKind>, char> known = {
      {{"nets/canny/diffusion_pytorch_model.safetensors", ManifestFileKind::kWeights}, 'c'},
      {{"nets/canny/config.json", ManifestFileKind::kConfig}, 'd'},
      {{"ip/plus.safetensors", ManifestFileKind::kWeights}, 'e'},
      {{"ip/image_encoder/model.safetensors", ManifestFileKind::kWeights}, 'f'},
      {{"ip/image_encoder/config.json", ManifestFileKind::kConfig}, '0'},
      {{"edges.png", ManifestFileKind::kImage}, '1'},
      {{"hero.png", ManifestFileKind::kImage}, '2'},
      {{"my-pose.json", ManifestFileKind::kConfig}, '3'},
  };
  auto it = known.find({path, kind});
  if (it == known.end()) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  return ManifestFile{std::string(64, it->second), 100, 128, 128};
}

TEST(ManifestControls, ControlNetsAndAReferenceGoIntoTheBatchAndTheImage) {
  const std::string text = R"(name: knights
model: sdxl
defaults:
  width: 128
  height: 128
  controls: [{model: openpose, pose: walk_s_0, scale: 0.9, end: 0.75}]
  reference: {images: [hero.png], adapter: ip/plus.safetensors, scale: 0.6}
items:
  - {prompt: posed}
  - prompt: edged
    controls:
      - {model: nets/canny/, canny: {image: edges.png, low: 50, high: 150}}
      - {model: depth, image: edges.png, start: 0.2, guess_mode: true}
      - {model: openpose, pose: my-pose.json}
    reference: {images: [hero.png, hero.png], adapter: ip-adapter_sdxl, scale: 0.5}
)";
  auto m = ParseManifest(text, "k.yaml", Draw, {}, Files);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 2u);
  const v1::SamplingParams& posed = m->images[0].sampling;
  ASSERT_EQ(posed.controlnets_size(), 1);
  EXPECT_EQ(posed.controlnets(0).name(), "openpose");
  EXPECT_TRUE(posed.controlnets(0).sha256().empty());  // looked up in the workers' --controlnet-dir
  EXPECT_EQ(posed.controlnets(0).scale(), 0.9);
  EXPECT_EQ(posed.controlnets(0).start(), 0.0);
  EXPECT_EQ(posed.controlnets(0).end(), 0.75);
  // A pose by its name alone: the first built-in set that has it.
  EXPECT_EQ(m->images[0].image.controls(0).pose(), "builtin:walk-4dir/walk_s_0");
  EXPECT_EQ(posed.ip_adapter().name(), "plus");
  EXPECT_EQ(posed.ip_adapter().sha256(), std::string(64, 'e'));
  // An uploaded adapter brings the image_encoder folder beside it.
  EXPECT_EQ(posed.ip_adapter().encoder_sha256(), std::string(64, 'f'));
  EXPECT_EQ(posed.ip_adapter().encoder_config_sha256(), std::string(64, '0'));
  EXPECT_EQ(posed.ip_adapter().scale(), 0.6);
  EXPECT_EQ(m->images[0].image.reference_sha256_size(), 1);

  const v1::SamplingParams& edged = m->images[1].sampling;
  ASSERT_EQ(edged.controlnets_size(), 3);  // the item's list replaces the defaults'
  EXPECT_EQ(edged.controlnets(0).name(), "canny");
  EXPECT_EQ(edged.controlnets(0).sha256(), std::string(64, 'c'));
  EXPECT_EQ(edged.controlnets(0).config_sha256(), std::string(64, 'd'));
  EXPECT_EQ(edged.controlnets(1).start(), 0.2);
  EXPECT_TRUE(edged.controlnets(1).guess_mode());
  EXPECT_FALSE(edged.controlnets(0).guess_mode());
  const v1::ImageParams& image = m->images[1].image;
  ASSERT_EQ(image.controls_size(), 3);
  EXPECT_EQ(image.controls(0).canny().image_sha256(), std::string(64, '1'));
  EXPECT_EQ(image.controls(0).canny().low(), 50);
  EXPECT_EQ(image.controls(0).canny().high(), 150);
  EXPECT_EQ(image.controls(1).image_sha256(), std::string(64, '1'));
  EXPECT_EQ(image.controls(2).pose_sha256(), std::string(64, '3'));
  // An adapter by name: its encoder is the workers' (image_encoder in --ip-adapter-dir).
  EXPECT_EQ(edged.ip_adapter().name(), "ip-adapter_sdxl");
  EXPECT_TRUE(edged.ip_adapter().encoder().empty());
  EXPECT_TRUE(edged.ip_adapter().encoder_sha256().empty());
  EXPECT_EQ(image.reference_sha256_size(), 2);
}

TEST(ManifestControls, ASetBecomesOneNamedFramePerPoseInTheSetsOrder) {
  const std::string text = R"(name: hero
model: sdxl
defaults: {width: 128, height: 128}
items:
  - prompt: a knight
    name: hero
    seed: 5
    controls: [{model: canny, image: edges.png}]
    set:
      poses: builtin:walk-8dir
      directions: [w, s]
      model: openpose
      end: 0.8
      guess_mode: true
      reference: {images: [hero.png], adapter: plus, encoder: vit-h}
  - {prompt: after, seed: 9}
)";
  auto m = ParseManifest(text, "hero.yaml", Draw, {}, Files);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 9u);  // 4 frames x 2 directions, then the next item
  std::vector<std::string> names;
  for (int i = 0; i < 8; ++i) names.push_back(m->images[i].image.name());
  // The set's order (s before w), whatever order the filter lists.
  EXPECT_EQ(names, (std::vector<std::string>{"hero_walk_s_0", "hero_walk_s_1", "hero_walk_s_2", "hero_walk_s_3",
                                             "hero_walk_w_0", "hero_walk_w_1", "hero_walk_w_2", "hero_walk_w_3"}));
  const ManifestImage& frame = m->images[5];
  EXPECT_EQ(frame.index, 5);
  EXPECT_EQ(frame.image.seed(), 5u);  // every frame from the same noise
  ASSERT_EQ(frame.sampling.controlnets_size(), 2);  // the set's ControlNet first
  EXPECT_EQ(frame.sampling.controlnets(0).name(), "openpose");
  EXPECT_EQ(frame.sampling.controlnets(0).end(), 0.8);
  EXPECT_TRUE(frame.sampling.controlnets(0).guess_mode());
  EXPECT_FALSE(frame.sampling.controlnets(1).guess_mode());
  EXPECT_EQ(frame.sampling.controlnets(1).name(), "canny");
  EXPECT_EQ(frame.image.controls(0).pose(), "builtin:walk-8dir/walk_w_1");
  EXPECT_EQ(frame.image.controls(1).image_sha256(), std::string(64, '1'));
  EXPECT_EQ(frame.sampling.ip_adapter().encoder(), "vit-h");
  EXPECT_EQ(m->images[8].image.name(), "");
  EXPECT_EQ(m->images[8].index, 8);
  // A list of poses, by name.
  auto listed = ParseManifest(
      "name: x\nmodel: m\ndefaults: {width: 128, height: 128}\n"
      "items: [{prompt: a, set: {poses: [idle_s, walk_n_2], model: openpose}}]\n",
      "x.yaml", Draw, {}, Files);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->images.size(), 2u);
  EXPECT_EQ(listed->images[0].image.name(), "idle_s");
  EXPECT_EQ(listed->images[1].image.controls(0).pose(), "builtin:walk-4dir/walk_n_2");
}

// `reference: {first: true}`: the set's first pose without the IP-Adapter, every other pose
// with image k of the first pose as its reference picture (filled in by the coordinator).
TEST(ManifestControls, ASetsFirstImageIsTheOthersReference) {
  const std::string text = R"(name: sheet
model: sdxl
defaults: {width: 128, height: 128}
items:
  - {prompt: before, count: 2}
  - prompt: a knight
    name: hero
    seed: 5
    count: 2
    reference: {images: [hero.png], adapter: other}
    set:
      poses: [walk_s_0, walk_w_0, walk_n_0]
      model: openpose
      reference: {first: true, adapter: plus, encoder: vit-h, scale: 0.7}
)";
  auto m = ParseManifest(text, "sheet.yaml", Draw, {}, Files);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 8u);  // 2, then 3 poses x 2
  for (int i = 0; i < 4; ++i) {
    const ManifestImage& image = m->images[i];
    EXPECT_FALSE(image.image.has_reference_from_index()) << i;
    if (i >= 2) {
      EXPECT_FALSE(image.sampling.has_ip_adapter()) << "the first pose is made without a reference";
      EXPECT_EQ(image.image.reference_sha256_size(), 0);
    }
  }
  EXPECT_EQ(m->images[2].image.name(), "hero_walk_s_0");
  for (int i = 4; i < 8; ++i) {
    const ManifestImage& image = m->images[i];
    ASSERT_TRUE(image.image.has_reference_from_index()) << i;
    EXPECT_EQ(image.image.reference_from_index(), 2 + i % 2) << "image k of the first pose, k = " << i % 2;
    EXPECT_EQ(image.image.reference_sha256_size(), 0) << "the item's own reference images are replaced";
    EXPECT_EQ(image.sampling.ip_adapter().name(), "plus");
    EXPECT_EQ(image.sampling.ip_adapter().encoder(), "vit-h");
    EXPECT_EQ(image.sampling.ip_adapter().scale(), 0.7);
  }
  EXPECT_EQ(m->images[7].image.name(), "hero_walk_n_0");
  EXPECT_EQ(m->images[7].image.seed(), 6u);
  // The entries keep it for images made a chunk at a time.
  auto entries = ParseManifestEntries(text, "sheet.yaml", {}, Files);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->entries.size(), 4u);
  EXPECT_EQ(entries->entries[1].reference_from, -1);
  EXPECT_EQ(entries->entries[3].reference_from, 2);
  EXPECT_EQ(ExpandImage(entries->entries[3], 1, Draw).image.reference_from_index(), 3);
}

TEST(ManifestControls, RejectsBadControlFieldsNamingFileLineAndField) {
  struct Case { std::string text, message; };
  const std::string head = "name: x\nmodel: m\ndefaults: {width: 128, height: 128}\n";
  const Case cases[] = {
      {head + "items: [{prompt: a, controls: [{model: openpose, pose: walk_s_0, scale: 9}]}]\n",
       "job.yaml:4: items[0].controls[0].scale: must be 0..5"},
      {head + "items: [{prompt: a, controls: [{model: openpose, pose: walk_s_0, start: 0.5, end: 0.5}]}]\n",
       "items[0].controls[0].start: must be below end"},
      {head + "items: [{prompt: a, controls: [{model: openpose, pose: walk_s_0, end: 2}]}]\n",
       "items[0].controls[0].end: must be 0..1"},
      {head + "items: [{prompt: a, controls: [{model: openpose, pose: walk_s_0, guess_mode: maybe}]}]\n",
       "job.yaml:4: items[0].controls[0].guess_mode: has the wrong type"},
      {head + "items: [{prompt: a, controls: [{model: canny, image: gone.png}]}]\n",
       "items[0].controls[0].image: gone.png: no such file"},
      {head + "items: [{prompt: a, controls: [{model: gone/net, image: edges.png}]}]\n",
       "items[0].controls[0].model: gone/net/diffusion_pytorch_model.safetensors: no such file"},
      {head + "items: [{prompt: a, controls: [{model: openpose, pose: moonwalk_s_0}]}]\n",
       "items[0].controls[0].pose: unknown pose 'moonwalk_s_0'"},
      {head + "items: [{prompt: a, controls: [{model: openpose, pose: walk_s_0, image: edges.png}]}]\n",
       "items[0].controls[0]: needs exactly one of image"},
      {head + "items: [{prompt: a, controls: [{pose: walk_s_0}]}]\n", "items[0].controls[0].model: is required"},
      {head + "items: [{prompt: a, controls: [{model: canny, canny: {image: edges.png, low: 300, high: 200}}]}]\n",
       "items[0].controls[0].canny: needs 0 <= low <= high"},
      {"name: x\nmodel: m\ndefaults: {width: 256, height: 128}\nitems: [{prompt: a, controls: [{model: c, image: edges.png}]}]\n",
       "job.yaml:4: items[0].controls[0].image: is 128x128, not the item's aspect ratio (256x128)"},
      {head + "items: [{prompt: a, reference: {images: [hero.png]}}]\n", "items[0].reference.adapter: is required"},
      {head + "items: [{prompt: a, reference: {images: [], adapter: plus}}]\n", "items[0].reference.images: must be a non-empty list"},
      {head + "items: [{prompt: a, reference: {images: [hero.png], adapter: plus, scale: -1}}]\n",
       "items[0].reference.scale: must be 0..5"},
      {head + "items: [{prompt: a, reference: {images: [hero.png], adapter: gone.safetensors}}]\n",
       "items[0].reference.adapter: gone.safetensors: no such file"},
      {head + "items: [{prompt: a, set: {poses: builtin:moonwalk, model: openpose}}]\n",
       "items[0].set.poses: unknown pose set 'builtin:moonwalk'"},
      {head + "items: [{prompt: a, set: {poses: builtin:walk-8dir, directions: [up], model: openpose}}]\n",
       "items[0].set.directions[0]: unknown direction 'up'"},
      {head + "items: [{prompt: a, set: {poses: builtin:idle, directions: [n], model: openpose}}]\n",
       "items[0].set.directions: leaves none of the set's poses"},
      {head + "items: [{prompt: a, set: {poses: builtin:idle}}]\n", "items[0].set.model: is required"},
      {head + "items: [{prompt: a, name: ../x, set: {poses: builtin:idle, model: o}}]\n", "items[0].name: must be"},
      {head + "items: [{prompt: a, reference: {first: true, adapter: plus}}]\n",
       "job.yaml:4: items[0].reference.first: only in a set's reference"},
      {"name: x\nmodel: m\ndefaults: {width: 128, height: 128, reference: {first: true, adapter: plus}}\n"
       "items: [{prompt: a}]\n",
       "job.yaml:3: defaults.reference.first: only in a set's reference"},
      {head + "items: [{prompt: a, set: {poses: builtin:idle-4dir, model: o,"
              " reference: {first: true, images: [hero.png], adapter: plus}}}]\n",
       "items[0].set.reference.images: cannot be combined with first: true"},
      {head + "items: [{prompt: a, set: {poses: builtin:idle-4dir, model: o, reference: {first: true}}}]\n",
       "items[0].set.reference.adapter: is required"},
      {head + "items: [{prompt: a, set: {poses: builtin:idle-4dir, model: o, reference: {first: 3, adapter: plus}}}]\n",
       "items[0].set.reference.first: has the wrong type"},
      {head + "items: [{prompt: a, set: {poses: builtin:idle-4dir, model: o,"
              " reference: {first: false, adapter: plus}}}]\n",
       "items[0].set.reference.images: must be a non-empty list of PNG files (or first: true"},
      {head + "items: [{prompt: a, set: {poses: [idle_s], model: o, reference: {first: true, adapter: plus}}}]\n",
       "items[0].set.reference.first: needs a set of two or more poses"},
  };
  for (const Case& c : cases) {
    auto m = ParseManifest(c.text, "job.yaml", Draw, {}, Files);
    ASSERT_FALSE(m.ok()) << c.text;
    EXPECT_NE(m.status().message().find(c.message), std::string::npos) << m.status().message();
  }
}

TEST(ManifestControls, TheShippedWalkSheetExampleIsValid) {
  auto text = ReadFile(std::string(SPRITEFORGE_SOURCE_DIR) + "/workflows/hero-walk-sheet.yaml");
  ASSERT_TRUE(text.ok()) << text.status();
  std::vector<std::string> asked;
  auto m = ParseManifest(*text, "hero-walk-sheet.yaml", Draw, {},
                         [&](const std::string& path, ManifestFileKind kind) -> absl::StatusOr<ManifestFile> {
                           asked.push_back(path);
                           return ManifestFile{std::string(64, 'b'), 1, 1024, 1024};
                         });
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 32u);
  EXPECT_EQ(asked, (std::vector<std::string>{"reference/hero.png"}));
  EXPECT_EQ(m->images[0].image.name(), "hero_walk_s_0");
  EXPECT_EQ(m->images[31].image.name(), "hero_walk_se_3");
}

}  // namespace
}  // namespace spriteforge
