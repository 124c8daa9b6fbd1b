#include "coordinator/transport/access/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <filesystem>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {

struct TlsMaterial::Pair {
  std::vector<X509*> chain;  // leaf first
  EVP_PKEY* key = nullptr;
  ~Pair() {
    for (X509* c : chain) X509_free(c);
    EVP_PKEY_free(key);
  }
};

namespace {

constexpr unsigned kRefreshSeconds = 1;  // how soon gRPC sees reloaded copies

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  char buf[256] = "no detail";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

std::unique_ptr<BIO, decltype(&BIO_free)> Bio(const std::string& pem) {
  return {BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free};
}

absl::StatusOr<std::vector<X509*>> ReadCertificates(const std::string& pem, const std::string& path) {
  auto bio = Bio(pem);
  std::vector<X509*> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.push_back(c);
  ERR_clear_error();  // the end of the file reads as an error
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no PEM certificate in it"));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsMaterial>> TlsMaterial::Load(const TlsFiles& files,
                                                               const std::string& private_dir) {
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  std::unique_ptr<TlsMaterial> tls(new TlsMaterial(files));
  std::error_code ec;
  std::filesystem::create_directories(private_dir, ec);
  if (ec || chmod(private_dir.c_str(), 0700) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot make the private TLS folder ", private_dir));
  }
  tls->dir_ = private_dir;
  ASSIGN_OR_RETURN(auto pair, tls->ReadAndCopy());
  tls->current_ = pair;
  return tls;
}

TlsMaterial::~TlsMaterial() {
  providers_.clear();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

absl::StatusOr<std::shared_ptr<TlsMaterial::Pair>> TlsMaterial::ReadAndCopy() {
  auto cert_pem = ReadFile(files_.cert);
  if (!cert_pem.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-cert: ", cert_pem.status().message()));
  auto key_pem = ReadFile(files_.key);
  if (!key_pem.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", key_pem.status().message()));
  auto pair = std::make_shared<Pair>();
  ASSIGN_OR_RETURN(auto chain, ReadCertificates(*cert_pem, files_.cert));
  pair->chain = std::move(chain);
  auto bio = Bio(*key_pem);
  pair->key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!pair->key) return absl::InvalidArgumentError(absl::StrCat(files_.key, ": not a PEM private key (", OpenSslError(), ")"));
  if (X509_check_private_key(pair->chain[0], pair->key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(files_.key, " is not the private key of the certificate in ", files_.cert));
  }
  std::string ca_pem;
  if (!files_.client_ca.empty()) {
    auto ca = ReadFile(files_.client_ca);
    if (!ca.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-client-ca: ", ca.status().message()));
    ASSIGN_OR_RETURN(auto certs, ReadCertificates(*ca, files_.client_ca));
    for (X509* c : certs) X509_free(c);
    ca_pem = std::move(*ca);
  }
  // Each copy is replaced atomically; a watcher that reads between the renames takes the
  // complete new set at its next refresh, a second later.
  if (!ca_pem.empty()) {
    RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/ca.pem", ca_pem));
  }
  const mode_t old = umask(077);
  absl::Status s = WriteFileAtomic(dir_ + "/key.pem", *key_pem);
  if (s.ok()) s = WriteFileAtomic(dir_ + "/cert.pem", *cert_pem);
  umask(old);
  RETURN_IF_ERROR(s);
  return pair;
}

absl::Status TlsMaterial::Reload() {
  ASSIGN_OR_RETURN(auto pair, ReadAndCopy());
  std::lock_guard<std::mutex> lock(mu_);
  current_ = pair;
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> TlsMaterial::ServerCredentials(bool require_client_certificates) {
  const bool verify = require_client_certificates && has_client_ca();
  const std::string key = dir_ + "/key.pem", cert = dir_ + "/cert.pem";
  providers_.push_back(
      verify ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(key, cert, dir_ + "/ca.pem",
                                                                                    kRefreshSeconds)
             : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(key, cert, kRefreshSeconds));
  grpc::experimental::TlsServerCredentialsOptions options(providers_.back());
  options.watch_identity_key_cert_pairs();
  if (verify) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

int TlsMaterial::SelectCertificate(SSL* ssl, void* self) {
  auto* tls = static_cast<TlsMaterial*>(self);
  std::shared_ptr<Pair> pair;
  {
    std::lock_guard<std::mutex> lock(tls->mu_);
    pair = tls->current_;
  }
  if (SSL_use_certificate(ssl, pair->chain[0]) != 1 || SSL_use_PrivateKey(ssl, pair->key) != 1) return 0;
  SSL_clear_chain_certs(ssl);
  for (size_t i = 1; i < pair->chain.size(); ++i) {
    if (SSL_add1_chain_cert(ssl, pair->chain[i]) != 1) return 0;
  }
  return 1;
}

bool TlsMaterial::SetupHttp(SSL_CTX& ctx) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_cert_cb(&ctx, &TlsMaterial::SelectCertificate, this);
  return true;
}

}  // namespace spriteforge::coordinator
