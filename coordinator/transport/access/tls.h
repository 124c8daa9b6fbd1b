// The coordinator's TLS material (--tls-cert, --tls-key, --tls-client-ca) for its gRPC
// and HTTP ports, reloadable without a restart (SIGHUP).
//
// gRPC reads certificates through a file watcher, so the files it watches are private
// copies in a 0700 folder: Reload() checks the operator's files (PEM, key matching the
// certificate) and only then replaces the copies, so a half-written or mismatched pair is
// refused with a message and the old one stays in use. gRPC picks the copies up within a
// second; the HTTP port takes the new pair at its next handshake. Open connections and
// running jobs are untouched.
#pragma once

#include <openssl/ssl.h>

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grpc::experimental {
class FileWatcherCertificateProvider;
}

namespace spriteforge::coordinator {

struct TlsFiles {
  std::string cert;       // PEM certificate chain, leaf first
  std::string key;        // PEM private key of the leaf
  std::string client_ca;  // PEM CA bundle that signs client (worker) certificates; empty: none
};

class TlsMaterial {
 public:
  // `private_dir`: where the copies live (made 0700; reused after a crash, removed at exit).
  static absl::StatusOr<std::unique_ptr<TlsMaterial>> Load(const TlsFiles& files, const std::string& private_dir);
  ~TlsMaterial();

  // Reads the files again (SIGHUP). On error the current material stays in use.
  absl::Status Reload();

  // A gRPC port's credentials. With `require_client_certificates` (and a client CA) the
  // handshake refuses peers without a certificate signed by it.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials(bool require_client_certificates);
  bool has_client_ca() const { return !files_.client_ca.empty(); }

  // Prepares the HTTP server's context: the certificate is chosen at each handshake.
  bool SetupHttp(SSL_CTX& ctx);

 private:
  struct Pair;  // a parsed certificate chain and key
  explicit TlsMaterial(TlsFiles files) : files_(std::move(files)) {}
  absl::StatusOr<std::shared_ptr<Pair>> ReadAndCopy();
  static int SelectCertificate(SSL* ssl, void* self);

  TlsFiles files_;
  std::string dir_;  // private copies gRPC watches
  // One watcher per port: two servers sharing one, with different needs (identity only,
  // identity and client CA), stopped taking updates.
  std::vector<std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider>> providers_;
  mutable std::mutex mu_;
  std::shared_ptr<Pair> current_;
};

}  // namespace spriteforge::coordinator
