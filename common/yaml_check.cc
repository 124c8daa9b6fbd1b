#include "common/yaml_check.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/text.h"

namespace spriteforge {
namespace {

struct Refused {
  int line;
  std::string problem;
};

// What a node costs once expanded: its nodes, its scalar bytes and its nesting height.
struct Size {
  size_t nodes = 0;
  size_t bytes = 0;
  int height = 0;
};

class ShapeCheck : public YAML::EventHandler {
 public:
  explicit ShapeCheck(const YamlLimits& limits) : limits_(limits) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnAnchor(const YAML::Mark&, const std::string& name) override { pending_anchor_name_ = name; }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Key(mark, nullptr);
    Leaf(mark, anchor, {1, 0, 1}, "");
  }

  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    if (!Utf8Length(value)) throw Refused{mark.line + 1, "text is not valid UTF-8"};
    Key(mark, &value);
    Leaf(mark, anchor, {1, value.size(), 1}, value);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    const std::string name = NameOf(anchor);
    for (const Frame& f : stack_) {
      if (f.anchor == anchor) throw Refused{mark.line + 1, absl::StrCat("alias *", name, " refers to a node that contains it")};
    }
    auto it = anchored_.find(anchor);
    if (it == anchored_.end()) throw Refused{mark.line + 1, absl::StrCat("alias *", name, " refers to no anchor")};
    auto text = scalar_anchors_.find(anchor);
    Key(mark, text == scalar_anchors_.end() ? nullptr : &text->second);
    Add(mark, it->second, absl::StrCat(" (expanding alias *", name, ")"));
    ChildDone(it->second.height);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor, false);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor, true);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    bool map;
    YAML::anchor_t anchor;
    size_t nodes_at_start, bytes_at_start;
    int height = 1;  // 1 + the tallest child so far
    bool expect_key = true;
    std::set<std::string> keys;
  };

  std::string NameOf(YAML::anchor_t anchor) const {
    auto it = names_.find(anchor);
    return it == names_.end() ? std::to_string(anchor) : it->second;
  }

  // In a mapping, every other node is a key: plain text, each once.
  void Key(const YAML::Mark& mark, const std::string* text) {
    if (stack_.empty() || !stack_.back().map || !stack_.back().expect_key) return;
    if (!text) throw Refused{mark.line + 1, "a mapping key must be plain text"};
    if (!stack_.back().keys.insert(*text).second) {
      throw Refused{mark.line + 1, absl::StrCat("duplicate key \"", text->substr(0, 64), "\"")};
    }
  }

  void Add(const YAML::Mark& mark, const Size& size, const std::string& how) {
    nodes_ += size.nodes;
    bytes_ += size.bytes;
    if (static_cast<int>(stack_.size()) + size.height > limits_.max_depth) {
      throw Refused{mark.line + 1, absl::StrCat("nested deeper than ", limits_.max_depth, " levels", how)};
    }
    if (nodes_ > limits_.max_nodes) {
      throw Refused{mark.line + 1, absl::StrCat("more than ", limits_.max_nodes, " values", how)};
    }
    if (bytes_ > limits_.max_scalar_bytes) {
      throw Refused{mark.line + 1, absl::StrCat("more than ", limits_.max_scalar_bytes, " bytes of text", how)};
    }
  }

  void Remember(YAML::anchor_t anchor, const Size& size) {
    if (anchor == YAML::NullAnchor) return;
    anchored_[anchor] = size;
  }

  void Leaf(const YAML::Mark& mark, YAML::anchor_t anchor, const Size& size, const std::string& text) {
    Name(anchor);
    Add(mark, size, "");
    Remember(anchor, size);
    if (anchor != YAML::NullAnchor) scalar_anchors_[anchor] = text;
    ChildDone(1);
  }

  void Name(YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) names_[anchor] = pending_anchor_name_;
    pending_anchor_name_.clear();
  }

  void Open(const YAML::Mark& mark, YAML::anchor_t anchor, bool map) {
    Key(mark, nullptr);
    Name(anchor);
    Add(mark, {1, 0, 1}, "");
    stack_.push_back({map, anchor, nodes_ - 1, bytes_});
  }

  void Close() {
    const Frame f = stack_.back();
    stack_.pop_back();
    Remember(f.anchor, {nodes_ - f.nodes_at_start, bytes_ - f.bytes_at_start, f.height});
    ChildDone(f.height);
  }

  void ChildDone(int child_height) {
    if (stack_.empty()) return;
    Frame& parent = stack_.back();
    parent.height = std::max(parent.height, child_height + 1);
    if (parent.map) parent.expect_key = !parent.expect_key;
  }

  const YamlLimits& limits_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, Size> anchored_;
  std::map<YAML::anchor_t, std::string> scalar_anchors_, names_;
  std::string pending_anchor_name_;
  size_t nodes_ = 0, bytes_ = 0;
};

}  // namespace

absl::Status CheckYamlShape(const std::string& text, const std::string& file, const YamlLimits& limits) {
  std::istringstream in(text);
  ShapeCheck check(limits);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(check);  // only the first document is ever loaded
  } catch (const Refused& r) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", r.line, ": ", r.problem));
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", e.mark.line + 1, ": not valid YAML or JSON: ", e.msg));
  }
  return absl::OkStatus();
}

}  // namespace spriteforge
