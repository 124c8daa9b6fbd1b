#include "coordinator/transport/http/browser_safety.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator::http {
namespace {

// "name:8080" -> "name", "[::1]:8080" -> "::1"; lower case.
std::string HostName(const std::string& host) {
  std::string name = host;
  if (!name.empty() && name.front() == '[') {
    const size_t close = name.find(']');
    name = close == std::string::npos ? name : name.substr(1, close - 1);
  } else if (const size_t colon = name.rfind(':'); colon != std::string::npos) {
    name = name.substr(0, colon);
  }
  return absl::AsciiStrToLower(name);
}

// A rebinding page's origin is always a name; an IP literal names the server itself.
bool IsIpLiteral(const std::string& name) {
  unsigned char address[16];
  return inet_pton(AF_INET, name.c_str(), address) == 1 || inet_pton(AF_INET6, name.c_str(), address) == 1;
}

// "application/json; charset=utf-8" -> "application/json".
std::string MediaType(const std::string& content_type) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
}

bool IsManifestType(const std::string& content_type) {
  const std::string type = MediaType(content_type);
  return type == "application/json" || type == "application/yaml" || type == "application/x-yaml" ||
         type == "text/yaml";
}

bool ChangesState(const std::string& method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

BrowserRefusal Refuse(int status, absl::Status reason) { return {status, std::move(reason)}; }

}  // namespace

BrowserRefusal CheckBrowserSafety(const BrowserRequest& r, const std::vector<std::string>& allowed_hosts) {
  const std::string name = HostName(r.host);
  if (!r.host.empty() && !IsIpLiteral(name) &&
      std::find(allowed_hosts.begin(), allowed_hosts.end(), name) == allowed_hosts.end()) {
    return Refuse(421, absl::PermissionDeniedError(absl::StrCat(
                           "Host '", r.host, "' is not served here; start the coordinator with --http-host-allow ",
                           name, " to serve it")));
  }
  if (!r.origin.empty()) {
    const bool own = absl::EqualsIgnoreCase(r.origin, "http://" + r.host) ||
                     absl::EqualsIgnoreCase(r.origin, "https://" + r.host);
    if (!own) {
      return Refuse(403, absl::PermissionDeniedError(
                             absl::StrCat("cross-origin requests are refused (Origin ", r.origin, ")")));
    }
  }
  const bool navigation = (r.method == "GET" || r.method == "HEAD") && r.sec_fetch_mode == "navigate";
  if (!r.sec_fetch_site.empty() && r.sec_fetch_site != "same-origin" && r.sec_fetch_site != "none" && !navigation) {
    return Refuse(403, absl::PermissionDeniedError(
                           absl::StrCat("cross-site requests are refused (Sec-Fetch-Site: ", r.sec_fetch_site, ")")));
  }
  if (ChangesState(r.method) && (r.has_body || !r.content_type.empty()) && !IsManifestType(r.content_type)) {
    return Refuse(415, absl::InvalidArgumentError(absl::StrCat(
                           "Content-Type '", r.content_type,
                           "' is not accepted: send application/json or application/yaml (or no body at all)")));
  }
  return {};
}

std::vector<std::string> DefaultAllowedHosts(const std::string& bound_host, const std::vector<std::string>& extra) {
  std::vector<std::string> names = {"localhost"};
  char hostname[256] = {};
  if (gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0]) {
    names.push_back(absl::AsciiStrToLower(hostname));
  }
  const std::string bound = absl::AsciiStrToLower(bound_host);
  if (!bound.empty() && bound != "0.0.0.0" && bound != "::" && bound != "[::]") names.push_back(bound);
  for (const std::string& name : extra) names.push_back(absl::AsciiStrToLower(name));
  return names;
}

}  // namespace spriteforge::coordinator::http
