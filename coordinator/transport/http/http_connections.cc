#include "coordinator/transport/http/http_connections.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {

struct ServedConnection {
  int sock = -1;    // kept for shutdown(); closed once httplib is done
  int theirs = -1;  // the descriptor httplib reads, writes and closes (a dup of sock)
  std::string client;
  std::atomic<int64_t> deadline_ms{0};  // steady clock; 0: not timed
  bool close_after_response = false;
  bool tls = false;
  int64_t timeout_ms = 0;
  int eof_fd = -1;
};

namespace {

// httplib serves an accepted socket in Server::process_and_close_socket (TLS included, in
// SSLServer's override): private and virtual, called only by its own accept loop, which
// offers no say over connections. An explicit instantiation may name a private member
// ([temp.explicit]), which lets this loop call it; the call dispatches virtually.
using ProcessSocket = bool (httplib::Server::*)(socket_t);
ProcessSocket ProcessAndCloseSocket();
template <ProcessSocket F>
struct ExposeProcessSocket {
  friend ProcessSocket ProcessAndCloseSocket() { return F; }
};
template struct ExposeProcessSocket<&httplib::Server::process_and_close_socket>;

// The socket bind_to_port opened (protected in httplib::Server); its keep-alive loops end
// once it is invalid.
struct ListeningSocket : httplib::Server {
  static std::atomic<socket_t>& Of(httplib::Server& server) { return server.*(&ListeningSocket::svr_sock_); }
};

thread_local ServedConnection* current = nullptr;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string PeerAddress(int sock) {
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  if (getpeername(sock, reinterpret_cast<sockaddr*>(&address), &size) != 0) return "?";
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&address)->sin_addr, text, sizeof text);
  } else if (address.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&address)->sin6_addr, text, sizeof text);
  }
  return text;
}

// Closing a socket with unread input resets it, and the client's stack may drop the reply
// it has not read yet (RFC 9112, 9.6). So the reply is followed by end-of-file, then what
// the client still sends is read and dropped until it closes, for a second at most.
void Linger(int sock) {
  shutdown(sock, SHUT_WR);
  constexpr int64_t kLingerMs = 1000;
  constexpr size_t kLingerBytes = 16 << 20;
  const int64_t until = NowMs() + kLingerMs;
  char sink[65536];
  for (size_t dropped = 0; dropped < kLingerBytes;) {
    const int64_t left = until - NowMs();
    pollfd ready{sock, POLLIN, 0};
    if (left <= 0 || poll(&ready, 1, static_cast<int>(left)) <= 0) return;
    const ssize_t n = recv(sock, sink, sizeof sink, 0);
    if (n <= 0) return;
    dropped += static_cast<size_t>(n);
  }
}

}  // namespace

absl::Status ConnectionCounts::Admit(const std::string& client) {
  if (open_ >= limits_.max_connections) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many open connections (", limits_.max_connections, "); try again later"));
  }
  int& mine = by_client_[client];
  if (mine >= limits_.max_per_client) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many open connections from ", client, " (", limits_.max_per_client, "); try again later"));
  }
  ++mine;
  ++open_;
  return absl::OkStatus();
}

void ConnectionCounts::Release(const std::string& client) {
  auto it = by_client_.find(client);
  if (it == by_client_.end()) return;
  if (--it->second <= 0) by_client_.erase(it);
  --open_;
}

ConnectionLoop::ConnectionLoop(httplib::Server& server, ConnectionLimits limits)
    : server_(server), limits_(limits), counts_(limits), eof_fd_(open("/dev/null", O_RDWR | O_CLOEXEC)) {
  // httplib listens with a backlog of 5: a burst of clients overflowed it, and each one
  // dropped waited a second to try again.
  listen(ListeningSocket::Of(server_), SOMAXCONN);
}

ConnectionLoop::~ConnectionLoop() {
  Stop();
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return open_.empty(); });  // their threads use the server
  lock.unlock();
  if (eof_fd_ >= 0) close(eof_fd_);
}

void ConnectionLoop::Run() {
  const int listening = ListeningSocket::Of(server_);
  while (true) {
    pollfd ready{listening, POLLIN, 0};
    const int events = poll(&ready, 1, 100);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
    }
    DisconnectLate();
    if (events <= 0) continue;
    const int sock = accept4(listening, nullptr, nullptr, SOCK_CLOEXEC);
    if (sock < 0) {
      if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    auto connection = std::make_shared<ServedConnection>();
    connection->sock = sock;
    connection->client = PeerAddress(sock);
    connection->timeout_ms = limits_.request_timeout.count();
    connection->eof_fd = eof_fd_;
    connection->tls = dynamic_cast<httplib::SSLServer*>(&server_) != nullptr;
    absl::Status admitted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      admitted = counts_.Admit(connection->client);
      if (admitted.ok()) {
        connection->theirs = fcntl(sock, F_DUPFD_CLOEXEC, 0);
        connection->deadline_ms = NowMs() + connection->timeout_ms;
        open_[connection.get()] = connection;
      }
    }
    if (!admitted.ok()) {
      Refuse(sock, std::string(admitted.message()));
      continue;
    }
    try {
      std::thread([this, connection] { Serve(connection); }).detach();
    } catch (const std::system_error&) {
      close(connection->theirs);
      connection->theirs = -1;
      Serve(connection);  // with no descriptor for httplib: only the bookkeeping
    }
  }
  ListeningSocket::Of(server_).exchange(INVALID_SOCKET);
  shutdown(listening, SHUT_RDWR);
  close(listening);
}

void ConnectionLoop::Serve(std::shared_ptr<ServedConnection> connection) {
  if (connection->theirs >= 0) {
    current = connection.get();
    (server_.*ProcessAndCloseSocket())(connection->theirs);  // closes `theirs`
    current = nullptr;
  }
  if (connection->close_after_response) Linger(connection->sock);
  std::lock_guard<std::mutex> lock(mu_);
  close(connection->sock);
  counts_.Release(connection->client);
  open_.erase(connection.get());
  idle_.notify_all();
}

// A plain-text answer a TLS client could not read: those are only closed.
void ConnectionLoop::Refuse(int sock, const std::string& reason) {
  if (!dynamic_cast<httplib::SSLServer*>(&server_)) {
    const std::string body =
        absl::StrCat(R"({"error": {"code": "RESOURCE_EXHAUSTED", "message": ")", reason, "\"}}\n");
    const std::string reply = absl::StrCat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                           "Connection: close\r\nContent-Length: ",
                                           body.size(), "\r\n\r\n", body);
    (void)send(sock, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  shutdown(sock, SHUT_WR);
  close(sock);
}

void ConnectionLoop::DisconnectLate() {
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [raw, connection] : open_) {
    const int64_t deadline = connection->deadline_ms;
    if (deadline != 0 && now > deadline) {
      connection->deadline_ms = 0;
      shutdown(connection->sock, SHUT_RDWR);  // its thread's next read ends the connection
    }
  }
}

void ConnectionLoop::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  stopping_ = true;
  for (auto& [raw, connection] : open_) shutdown(connection->sock, SHUT_RDWR);
}

void RequestHeadersRead(bool body_follows) {
  if (current && !body_follows) current->deadline_ms = 0;
}

void RequestBodyRead() {
  if (current) current->deadline_ms = 0;
}

void CloseAfterResponse() {
  if (current) current->close_after_response = true;
}

int PlainSocket() { return current && !current->tls ? current->sock : -1; }

void ResponseSent() {
  if (!current) return;
  if (current->close_after_response) {
    // The rest of the request stays unread: httplib's next read on this connection finds
    // end-of-file and it closes. (shutdown() would not do: queued bytes stay readable.)
    dup2(current->eof_fd, current->theirs);
    return;
  }
  current->deadline_ms = NowMs() + current->timeout_ms;
}

}  // namespace spriteforge::coordinator
