// How the client and the workers dial the coordinator: plaintext or TLS (verifying the
// coordinator against a CA, optionally presenting a client certificate), and a token sent
// with every call as "authorization: Bearer TOKEN".
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace CLI {
class App;
}

namespace spriteforge {

struct ChannelSecurity {
  std::string ca_file;    // --tls-ca: PEM CA that signed the coordinator's certificate; empty: plaintext
  std::string cert_file;  // --tls-cert / --tls-key: client certificate (mTLS)
  std::string key_file;
  std::string token;      // --token, else $SPRITEFORGE_TOKEN; empty: none
};

// --tls-ca, --tls-cert and --tls-key into `security`, as the client and the worker take them
// (each adds its own --token, whose help and environment differ).
void AddTlsFlags(CLI::App& app, ChannelSecurity& security);

// Reads the files (errors name the flag and the file) and makes the channel.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialCoordinator(const std::string& address,
                                                               const ChannelSecurity& security,
                                                               const grpc::ChannelArguments& args);

// "A,B" (coordinators sharing one database: one leads, the others stand by) as a list;
// an empty entry is an error naming the flag's value.
absl::StatusOr<std::vector<std::string>> SplitCoordinatorAddresses(const std::string& list);

// Whether a call's status says "try another coordinator": unreachable, or a standby's
// UNAVAILABLE answer.
bool TryAnotherCoordinator(const grpc::Status& status);

// Of several coordinators, the channel to the first that answers a call other than
// UNAVAILABLE, trying the list in order for up to `wait`; the first address when none
// does (the caller's call then reports why). One address is dialled without a call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialLeader(const std::vector<std::string>& addresses,
                                                          const ChannelSecurity& security,
                                                          const grpc::ChannelArguments& args,
                                                          std::chrono::milliseconds wait);

}  // namespace spriteforge
