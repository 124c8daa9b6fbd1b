// Which requests a browser may carry to the HTTP API from pages elsewhere, decided from
// their headers alone (http/browser_safety).
#include "coordinator/transport/http/browser_safety.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "coordinator/transport/http/http_connections.h"

namespace spriteforge::coordinator::http {
namespace {

const std::vector<std::string> kHosts = {"localhost", "coordinator"};

BrowserRequest Post(const std::string& content_type) {
  BrowserRequest r;
  r.method = "POST";
  r.host = "127.0.0.1:8080";
  r.content_type = content_type;
  r.has_body = true;
  return r;
}

TEST(BrowserSafety, ABodyMustBeJsonOrYamlSoBrowsersAskFirst) {
  for (const char* type : {"application/json", "application/yaml", "application/x-yaml", "text/yaml",
                           "Application/JSON; charset=utf-8"}) {
    EXPECT_FALSE(CheckBrowserSafety(Post(type), kHosts).refused()) << type;
  }
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""}) {
    const BrowserRefusal refusal = CheckBrowserSafety(Post(type), kHosts);
    EXPECT_EQ(refusal.status, 415) << type;
  }
  EXPECT_EQ(CheckBrowserSafety(Post("text/plain"), kHosts).reason.message(),
            "Content-Type 'text/plain' is not accepted: send application/json or application/yaml (or no body at all)");
  BrowserRequest cancel = Post("");
  cancel.has_body = false;  // no body, no type: nothing a form could carry
  EXPECT_FALSE(CheckBrowserSafety(cancel, kHosts).refused());
  cancel.content_type = "text/plain";
  EXPECT_EQ(CheckBrowserSafety(cancel, kHosts).status, 415);
  BrowserRequest get = Post("text/plain");
  get.method = "GET";
  EXPECT_FALSE(CheckBrowserSafety(get, kHosts).refused());
}

TEST(BrowserSafety, OnlyThisServersOwnOriginAndSameOriginFetchesPass) {
  BrowserRequest r = Post("application/json");
  r.origin = "http://127.0.0.1:8080";
  r.sec_fetch_site = "same-origin";
  EXPECT_FALSE(CheckBrowserSafety(r, kHosts).refused());
  r.origin = "https://127.0.0.1:8080";
  EXPECT_FALSE(CheckBrowserSafety(r, kHosts).refused());
  for (const char* origin : {"http://127.0.0.1:3000", "http://evil.example", "null"}) {
    r.origin = origin;
    EXPECT_EQ(CheckBrowserSafety(r, kHosts).status, 403) << origin;
  }
  r.origin = "";
  for (const char* site : {"cross-site", "same-site"}) {
    r.sec_fetch_site = site;
    EXPECT_EQ(CheckBrowserSafety(r, kHosts).status, 403) << site;
  }
  r.sec_fetch_site = "none";  // typed into the address bar
  EXPECT_FALSE(CheckBrowserSafety(r, kHosts).refused());
  BrowserRequest link;
  link.method = "GET";
  link.host = "localhost:8080";
  link.sec_fetch_site = "cross-site";
  link.sec_fetch_mode = "navigate";
  EXPECT_FALSE(CheckBrowserSafety(link, kHosts).refused());
  link.sec_fetch_mode = "no-cors";  // an <img> or a script elsewhere
  EXPECT_EQ(CheckBrowserSafety(link, kHosts).status, 403);
}

TEST(BrowserSafety, OnlyIpLiteralsAndAllowedNamesAreServed) {
  BrowserRequest r;
  r.method = "GET";
  for (const char* host : {"127.0.0.1:8080", "10.1.2.3", "[::1]:8080", "LOCALHOST:8080", "coordinator:8080", ""}) {
    r.host = host;
    EXPECT_FALSE(CheckBrowserSafety(r, kHosts).refused()) << host;
  }
  for (const char* host : {"evil.example:8080", "localhost.evil.example", "coordinator.evil.example"}) {
    r.host = host;
    EXPECT_EQ(CheckBrowserSafety(r, kHosts).status, 421) << host;
  }
  const std::vector<std::string> defaults = DefaultAllowedHosts("0.0.0.0", {"Sprites.Example"});
  EXPECT_EQ(defaults.front(), "localhost");
  EXPECT_EQ(defaults.back(), "sprites.example");
  EXPECT_EQ(std::count(defaults.begin(), defaults.end(), "0.0.0.0"), 0);
  const std::vector<std::string> named = DefaultAllowedHosts("gpu-box", {});
  EXPECT_EQ(named.back(), "gpu-box");
}

TEST(ConnectionCounts, EachClientAddressHasItsShareAndAllHaveACap) {
  ConnectionCounts counts({/*max_connections=*/3, /*max_per_client=*/2});
  EXPECT_TRUE(counts.Admit("10.0.0.1").ok());
  EXPECT_TRUE(counts.Admit("10.0.0.1").ok());
  const absl::Status third = counts.Admit("10.0.0.1");
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(third.message(), "too many open connections from 10.0.0.1 (2); try again later");
  EXPECT_TRUE(counts.Admit("10.0.0.2").ok());
  EXPECT_EQ(counts.Admit("10.0.0.3").message(), "too many open connections (3); try again later");
  counts.Release("10.0.0.1");
  EXPECT_TRUE(counts.Admit("10.0.0.3").ok());
  EXPECT_EQ(counts.open(), 3);
}

}  // namespace
}  // namespace spriteforge::coordinator::http
