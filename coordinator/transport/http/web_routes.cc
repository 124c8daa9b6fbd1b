// The web page: / serves index.html, /web/<file> the scripts and styles it loads.
#include <httplib.h>

#include "absl/status/status.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/transport/http/web_assets.h"

namespace spriteforge::coordinator::http {
namespace {

void Serve(const std::string& path, httplib::Response& res) {
  const WebAsset* asset = FindWebAsset(path);
  if (!asset) return ReplyError(res, absl::NotFoundError("no web file " + path));
  // The files change with the binary only; a short cache keeps upgrades visible.
  res.set_header("Cache-Control", "max-age=60");
  res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->content_type);
}

}  // namespace

void RegisterWebRoutes(httplib::Server& server) {
  server.Get("/", [](const httplib::Request&, httplib::Response& res) { Serve("/index.html", res); });
  // Browsers ask for it unprompted; the page's SVG answers (they read the type, not the name).
  server.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { Serve("/favicon.svg", res); });
  server.Get(R"(/web/([A-Za-z0-9_.-]{1,64}))",
             [](const httplib::Request& req, httplib::Response& res) { Serve("/" + std::string(req.matches[1]), res); });
}

}  // namespace spriteforge::coordinator::http
