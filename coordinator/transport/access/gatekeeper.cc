#include "coordinator/transport/access/gatekeeper.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {
namespace {

std::string Authorization(const grpc::ServerContextBase& ctx) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

// The peer's verified leaf certificate, as gRPC reports it; null without one.
std::unique_ptr<X509, decltype(&X509_free)> PeerCertificate(const std::shared_ptr<const grpc::AuthContext>& auth) {
  std::unique_ptr<X509, decltype(&X509_free)> none(nullptr, &X509_free);
  if (!auth || !auth->IsPeerAuthenticated()) return none;
  const auto pems = auth->FindPropertyValues("x509_pem_cert");
  if (pems.empty()) return none;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pems[0].data(), static_cast<int>(pems[0].size())),
                                                &BIO_free);
  return {PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free};
}

std::string Subject(X509& cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  X509_NAME_print_ex(out.get(), X509_get_subject_name(&cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool SubjectHas(X509& cert, int nid, const std::string& value) {
  X509_NAME* name = X509_get_subject_name(&cert);
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0; i = X509_NAME_get_index_by_NID(name, nid, i)) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    const std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                           static_cast<size_t>(ASN1_STRING_length(data)));
    if (text == value) return true;
  }
  return false;
}

bool AltNameHas(X509& cert, int type, const std::string& value) {
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(&cert, NID_subject_alt_name, nullptr, nullptr));
  bool found = false;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !found; ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != type) continue;
    const ASN1_IA5STRING* s = type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.dNSName;
    found = std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        static_cast<size_t>(ASN1_STRING_length(s))) == value;
  }
  GENERAL_NAMES_free(names);
  return found;
}

bool Matches(X509& cert, const WorkerCertificateRule& rule) {
  if (rule.field == "OU") return SubjectHas(cert, NID_organizationalUnitName, rule.value);
  if (rule.field == "CN") return SubjectHas(cert, NID_commonName, rule.value);
  if (rule.field == "O") return SubjectHas(cert, NID_organizationName, rule.value);
  if (rule.field == "URI") return AltNameHas(cert, GEN_URI, rule.value);
  if (rule.field == "DNS") return AltNameHas(cert, GEN_DNS, rule.value);
  return false;
}

}  // namespace

std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
}

absl::Status AuthorizeJob(const Principal& who, Action action, const std::string& owner, const std::string& job_id) {
  absl::Status allowed = Authorize(who, action, owner, job_id);
  if (allowed.ok() || !absl::IsPermissionDenied(allowed) || Authorize(who, Action::kReadJob, owner, job_id).ok()) {
    return allowed;
  }
  return absl::NotFoundError(absl::StrCat("no job ", job_id));
}

absl::StatusOr<WorkerCertificateRule> ParseWorkerCertificateRule(const std::string& text) {
  for (const char* field : {"OU=", "CN=", "O=", "URI:", "DNS:"}) {
    const std::string prefix = field;
    if (text.rfind(prefix, 0) == 0 && text.size() > prefix.size()) {
      return WorkerCertificateRule{prefix.substr(0, prefix.size() - 1), text.substr(prefix.size())};
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("--worker-cert-match '", text,
                                                 "': expected OU=NAME, CN=NAME, O=NAME, URI:NAME or DNS:NAME"));
}

absl::StatusOr<Principal> Gatekeeper::Caller(const grpc::ServerContextBase& ctx) const {
  return CallerFor(Authorization(ctx));
}

absl::StatusOr<Principal> Gatekeeper::CallerFor(const std::string& authorization) const {
  if (!options_.tokens) return Principal{};
  ASSIGN_OR_RETURN(Principal who, options_.tokens->Authenticate(authorization));
  if (who.role == Role::kWorker) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", who.name, "' (worker) may only connect as a worker, not call the client API"));
  }
  return who;
}

absl::StatusOr<std::string> Gatekeeper::AdmitWorker(const grpc::ServerContextBase& ctx) const {
  const std::string authorization = Authorization(ctx);
  if (options_.worker_certificates && authorization.empty()) {
    // gRPC verified the certificate against --tls-client-ca during the handshake; that
    // makes it a client's, not yet a worker's: with tokens, submitters hold such
    // certificates too, so only one the operator marked as a worker's (--worker-cert-match)
    // admits a worker.
    if (auto cert = PeerCertificate(ctx.auth_context())) {
      const std::string subject = Subject(*cert);
      const auto& rules = options_.worker_certificate_rules;
      const bool marked = std::any_of(rules.begin(), rules.end(), [&](const auto& r) { return Matches(*cert, r); });
      if (marked || (rules.empty() && !options_.tokens)) return absl::StrCat("certificate ", subject);
      return absl::PermissionDeniedError(absl::StrCat(
          "client certificate '", subject, "' is not a worker's: workers need a worker token or a certificate ",
          "matching --worker-cert-match"));
    }
  }
  if (!options_.tokens) {
    if (options_.worker_certificates) {
      return absl::UnauthenticatedError("workers need a client certificate signed by --tls-client-ca");
    }
    return absl::StrCat("host ", PeerHost(ctx.peer()));
  }
  if (authorization.empty()) {
    return absl::UnauthenticatedError("workers need a worker token: pass --token or set SPRITEFORGE_TOKEN");
  }
  ASSIGN_OR_RETURN(auto who, options_.tokens->Authenticate(authorization));
  RETURN_IF_ERROR(Authorize(who, Action::kWorkerStream));
  return absl::StrCat("token ", who.name);
}

absl::Status Gatekeeper::AllowSubmit(const Principal& who, const grpc::ServerContextBase& ctx) {
  return AllowSubmitFrom(who, PeerHost(ctx.peer()));
}

absl::Status Gatekeeper::AllowSubmitFrom(const Principal& who, const std::string& peer_host) {
  const int per_minute = who.limits.submits_per_minute > 0 ? who.limits.submits_per_minute : options_.submits_per_minute;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  return submits_.Allow(who.anonymous ? peer_host : who.name, per_minute, now);
}

}  // namespace spriteforge::coordinator
