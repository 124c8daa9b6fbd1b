// The HTTP port against clients that are slow, huge or another web page in the user's
// browser: raw sockets, so each request says exactly what a hostile client would.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/transport/http/http_endpoint.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

using std::chrono::milliseconds;

// A client socket connected to 127.0.0.1:port; closed with the object.
class RawClient {
 public:
  explicit RawClient(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& data) { return send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size()); }
  // What arrives until the server closes or `wait` passes; `closed` tells which.
  std::string Read(milliseconds wait, bool* closed = nullptr) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    if (closed) *closed = false;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) continue;
      char buffer[4096];
      const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) {
        if (closed) *closed = true;
        break;
      }
      got.append(buffer, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  int fd_;
  bool connected_ = false;
};

class HttpEdgeTest : public testing::CoordinatorTest {
 protected:
  void Serve(HttpEdge edge = {}) {
    auto endpoint = HttpEndpoint::Start(core_.get(), "127.0.0.1", 0, {}, {}, edge);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = std::move(*endpoint);
  }
  void TearDown() override {
    endpoint_.reset();
    CoordinatorTest::TearDown();
  }
  int port() const { return endpoint_->port(); }
  std::unique_ptr<HttpEndpoint> endpoint_;
};

std::string Hex(size_t n) {
  char text[32];
  std::snprintf(text, sizeof text, "%zx", n);
  return text;
}

constexpr char kManifest[] = "name: t\nmodel: tiny-sdxl\nitems: [{prompt: potion}]\n";

TEST_F(HttpEdgeTest, AnotherWebPageCannotSubmitThroughTheUsersBrowser) {
  Serve();
  httplib::Client http("127.0.0.1", port());
  // A "simple" request a page may send without asking: text/plain, a form, no type.
  EXPECT_EQ(http.Post("/v1/jobs", kManifest, "text/plain")->status, 415);
  EXPECT_EQ(http.Post("/sdapi/v1/txt2img", "prompt=x", "application/x-www-form-urlencoded")->status, 415);
  // Asking first (a JSON type) from another origin, or a page on a rebound name.
  EXPECT_EQ(http.Post("/v1/jobs", {{"Origin", "http://evil.example"}}, kManifest, "application/yaml")->status, 403);
  EXPECT_EQ(http.Post("/v1/jobs", {{"Sec-Fetch-Site", "cross-site"}}, kManifest, "application/yaml")->status, 403);
  auto rebound = http.Get("/v1/jobs", {{"Host", "evil.example:8080"}});
  EXPECT_EQ(rebound->status, 421);
  EXPECT_NE(rebound->body.find("--http-host-allow evil.example"), std::string::npos) << rebound->body;
  EXPECT_EQ(http.Get("/v1/jobs", {{"Host", "localhost:8080"}})->status, 200);
  // A link to the page from anywhere still opens it.
  EXPECT_EQ(http.Get("/", {{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Mode", "navigate"}})->status, 200);

  // The page's own requests: same origin, a manifest type.
  const std::string own = "http://127.0.0.1:" + std::to_string(port());
  auto posted = http.Post("/v1/jobs", {{"Origin", own}, {"Sec-Fetch-Site", "same-origin"}}, kManifest,
                          "application/yaml; charset=utf-8");
  ASSERT_EQ(posted->status, 201) << posted->body;
  auto health = http.Get("/healthz");
  auto missing = http.Get("/no/such/route");
  for (const httplib::Response* reply : {&*posted, &*health, &*missing}) {
    EXPECT_EQ(reply->get_header_value("X-Frame-Options"), "DENY");
    EXPECT_EQ(reply->get_header_value("X-Content-Type-Options"), "nosniff");
    EXPECT_NE(reply->get_header_value("Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
  }
}

TEST_F(HttpEdgeTest, ACancelNeedsNoBodyAndNoContentType) {
  Serve();
  const std::string job = Submit(1);
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /v1/jobs/" + job + "/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
  const std::string reply = client.Read(milliseconds(2000));
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find("JOB_CANCELLED"), std::string::npos) << reply;
}

TEST_F(HttpEdgeTest, ABodyOverTheLimitIsRefusedBeforeItIsRead) {
  HttpEdge edge;
  edge.max_body_bytes = 1024;
  Serve(edge);
  // Chunked: the limit is counted while reading; the body never ends, yet the reply comes.
  RawClient chunked(port());
  ASSERT_TRUE(chunked.Send("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n"));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(chunked.Send("200\r\n" + std::string(0x200, '#') + "\r\n"));
  bool closed = false;
  const std::string refused = chunked.Read(milliseconds(2000), &closed);
  EXPECT_EQ(refused.rfind("HTTP/1.1 413", 0), 0u) << refused;
  EXPECT_NE(refused.find("the request body exceeds 1024 bytes"), std::string::npos) << refused;
  EXPECT_TRUE(closed) << "the connection stayed open to read the rest";
  // Declared: refused on the headers alone.
  RawClient declared(port());
  ASSERT_TRUE(declared.Send("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
                            "Content-Length: 536870912\r\n\r\n"));
  const std::string declared_reply = declared.Read(milliseconds(2000), &closed);
  EXPECT_EQ(declared_reply.rfind("HTTP/1.1 413", 0), 0u) << declared_reply;
  EXPECT_TRUE(closed);
  // A body within the limit is read, chunked or not.
  RawClient small(port());
  const std::string manifest = kManifest;
  ASSERT_TRUE(small.Send("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\nConnection: close\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n" + Hex(manifest.size()) + "\r\n" +
                         manifest + "\r\n0\r\n\r\n"));
  const std::string accepted = small.Read(milliseconds(2000));
  EXPECT_EQ(accepted.rfind("HTTP/1.1 201", 0), 0u) << accepted;
}

TEST_F(HttpEdgeTest, SlowClientsHoldNoHealthCheckHostage) {
  HttpEdge edge;
  edge.connections.max_per_client = 200;
  Serve(edge);
  // More than httplib's whole pool of 64 threads, each sending half its headers.
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 70; ++i) {
    slow.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->Send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  }
  httplib::Client http("127.0.0.1", port());
  http.set_read_timeout(1, 0);
  auto health = http.Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200) << health->body;
}

TEST_F(HttpEdgeTest, AClientThatDawdlesIsDisconnectedAndOneAddressHasFewConnections) {
  HttpEdge edge;
  edge.connections.max_per_client = 3;
  edge.connections.request_timeout = milliseconds(300);
  Serve(edge);
  std::vector<std::unique_ptr<RawClient>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(open.back()->Send("GET /healthz HTTP/1.1\r\n"));
  }
  RawClient fourth(port());
  bool closed = false;
  const std::string refused = fourth.Read(milliseconds(1000), &closed);
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("too many open connections from 127.0.0.1 (3)"), std::string::npos) << refused;
  EXPECT_TRUE(closed);
  // Each of the three gets 300 ms for its headers, then is cut off, freeing its place.
  for (auto& client : open) {
    client->Read(milliseconds(1500), &closed);
    EXPECT_TRUE(closed) << "a client that never finished its headers kept its connection";
  }
  // Their places free once their threads are done.
  httplib::Client http("127.0.0.1", port());
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    if (i) std::this_thread::sleep_for(milliseconds(20));
    status = http.Get("/healthz")->status;
  }
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace spriteforge::coordinator
