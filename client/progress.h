// Renders a job's live progress from its event stream: one bar for the job, one per
// worker (current step of its batch), images per second and ETA.
#pragma once

#include <map>
#include <string>

#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::client {

class ProgressView {
 public:
  explicit ProgressView(bool terminal) : terminal_(terminal) {}
  // Folds in one event; returns the text to print (redraws in place on a terminal).
  std::string Update(const v1::JobEvent& event);

 private:
  struct WorkerLine {
    int step = 0, total = 0, images = 0;
  };
  bool terminal_;
  int lines_drawn_ = 0;
  v1::Job job_;
  std::string waiting_;  // the waiting reason last shown
  std::map<std::string, WorkerLine> workers_;
};

std::string Bar(double fraction, int width);

}  // namespace spriteforge::client
