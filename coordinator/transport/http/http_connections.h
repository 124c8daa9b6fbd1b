// The HTTP port's connections, served one thread each so a slow client never queues
// others behind it (httplib's own loop hands connections to a fixed pool: 64 clients that
// send a byte every few seconds held every thread, and /healthz waited behind them):
// - at most `max_per_client` open connections per client address and `max_connections`
//   in all; past them a connection is answered 503 and closed at once;
// - a request's headers and body must arrive within `request_timeout` of the connection
//   opening (or of the previous response); a client that dawdles is disconnected. Handlers
//   that stream (events, blocking generation calls) are not limited by it;
// - a request refused before its body was read (too large, unauthenticated) closes the
//   connection after its response, so the body is never read at all.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace spriteforge::coordinator {

struct ConnectionLimits {
  int max_connections = 512;
  int max_per_client = 32;
  std::chrono::milliseconds request_timeout{10000};
};

// Open connections by client address; the admission rule alone.
class ConnectionCounts {
 public:
  explicit ConnectionCounts(ConnectionLimits limits) : limits_(limits) {}
  // OK and counted, or RESOURCE_EXHAUSTED naming the limit.
  absl::Status Admit(const std::string& client);
  void Release(const std::string& client);
  int open() const { return open_; }

 private:
  ConnectionLimits limits_;
  std::map<std::string, int> by_client_;
  int open_ = 0;
};

struct ServedConnection;

// Accepts on the socket `server` bound and serves each connection on a thread of its own
// with httplib's request handling. Stop() ends the loop and every connection.
class ConnectionLoop {
 public:
  ConnectionLoop(httplib::Server& server, ConnectionLimits limits);
  ~ConnectionLoop();
  void Run();
  void Stop();

 private:
  void Serve(std::shared_ptr<ServedConnection> connection);
  void Refuse(int sock, const std::string& reason);
  void DisconnectLate();

  httplib::Server& server_;
  ConnectionLimits limits_;
  std::mutex mu_;
  std::condition_variable idle_;
  ConnectionCounts counts_;
  std::map<ServedConnection*, std::shared_ptr<ServedConnection>> open_;
  bool stopping_ = false;
  int eof_fd_ = -1;  // /dev/null: swapped in for a connection to be closed, it reads end-of-file
};

// Called by the server's handlers on the connection's thread; no-ops elsewhere.
// The request's headers (and, with `body_follows` false, all of it) have arrived.
void RequestHeadersRead(bool body_follows);
// The request's body has been read: the handler may take as long as it needs.
void RequestBodyRead();
// Close the connection once this response is written, without reading more of it.
void CloseAfterResponse();
// The connection's socket, for a handler that reads what the client sends after its
// response began (a websocket's frames); -1 over TLS, whose bytes only httplib can read.
int PlainSocket();
// The response has been written: the next request on this connection is timed again.
void ResponseSent();

}  // namespace spriteforge::coordinator
