// How the client and the workers dial the coordinator: plaintext or TLS (verifying the
// coordinator against a CA, optionally presenting a client certificate), and a token sent
// with every call as "authorization: Bearer TOKEN".
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace spriteforge {

struct ChannelSecurity {
  std::string ca_file;    // --tls-ca: PEM CA that signed the coordinator's certificate; empty: plaintext
  std::string cert_file;  // --tls-cert / --tls-key: client certificate (mTLS)
  std::string key_file;
  std::string token;      // --token, else $SPRITEFORGE_TOKEN; empty: none
};

// Reads the files (errors name the flag and the file) and makes the channel.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialCoordinator(const std::string& address,
                                                               const ChannelSecurity& security,
                                                               const grpc::ChannelArguments& args);

}  // namespace spriteforge
