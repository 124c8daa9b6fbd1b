// Log settings: JSON lines a collector can parse whatever the message holds, and levels.
#include "common/logging.h"

#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace spriteforge {
namespace {

TEST(LoggingTest, JsonLinesEscapeQuotesAndNewlines) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("test", sink);
  logger.set_formatter(JsonLogFormatter());
  logger.warn("job {} said \"hi\"\nand left", "job-1");
  const std::string text = out.str();
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  auto line = nlohmann::json::parse(text);
  EXPECT_EQ(line["level"], "warning");
  EXPECT_EQ(line["msg"], "job job-1 said \"hi\"\nand left");
  EXPECT_EQ(line["logger"], "test");
  EXPECT_EQ(line["time"].get<std::string>().back(), 'Z');
}

TEST(LoggingTest, ConfigureSetsTheLevelAndRejectsUnknownNames) {
  ASSERT_TRUE(ConfigureLogging({"warn", "text"}).ok());
  EXPECT_EQ(spdlog::get_level(), spdlog::level::warn);
  ASSERT_TRUE(ConfigureLogging({"info", "text"}).ok());
  EXPECT_EQ(spdlog::get_level(), spdlog::level::info);
  auto level = ConfigureLogging({"loud", "text"});
  EXPECT_EQ(level.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(level.message().find("log level 'loud'"), std::string::npos) << level;
  EXPECT_FALSE(ConfigureLogging({"info", "xml"}).ok());
}

}  // namespace
}  // namespace spriteforge
