// What keeps web pages the user opens elsewhere from using a coordinator's HTTP API through
// the user's browser (a coordinator without tokens trusts whoever reaches it):
// - DNS rebinding: a page on a name the attacker controls, later resolved to this machine,
//   sends its own name as Host. Only IP literals, localhost, the bound address and the
//   names configured (--http-host-allow) are served; others get 421.
// - Cross-site requests: an Origin that is not this server's own, or Sec-Fetch-Site other
//   than same-origin/none, gets 403 (a plain navigation, GET or HEAD, may come from
//   anywhere: a link to the page).
// - Requests a page may send without asking (CORS "simple" requests: text/plain, forms):
//   a request with a body must say it carries JSON or YAML, so a browser asks first
//   (preflight), which this server never grants; anything else gets 415.
// Headers set on every response keep the page from being framed or sniffed.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace spriteforge::coordinator::http {

struct BrowserRequest {
  std::string method;
  std::string host;            // Host header
  std::string origin;          // Origin header, empty if none
  std::string sec_fetch_site;  // Sec-Fetch-Site, empty if none
  std::string sec_fetch_mode;  // Sec-Fetch-Mode, empty if none
  std::string content_type;    // Content-Type, empty if none
  bool has_body = false;       // Content-Length above 0, or a chunked body
};

// The refusal of a request, or status 0 when it may proceed.
struct BrowserRefusal {
  int status = 0;  // 403, 415 or 421
  absl::Status reason;
  bool refused() const { return status != 0; }
};

// `allowed_hosts`: host names (no port) served besides IP literals; case-insensitive.
BrowserRefusal CheckBrowserSafety(const BrowserRequest& request, const std::vector<std::string>& allowed_hosts);

// The names served by default: localhost, this machine's name, and `bound_host` (the
// address --http binds) unless it is a wildcard; then `extra` (--http-host-allow).
std::vector<std::string> DefaultAllowedHosts(const std::string& bound_host, const std::vector<std::string>& extra);

// Set on every response: the page loads its own scripts, styles and images only (previews
// arrive as data: URLs, results as blob: URLs), may not be framed, and nothing is sniffed.
constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

}  // namespace spriteforge::coordinator::http
