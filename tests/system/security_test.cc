// TLS, client certificates and tokens across real processes: the test makes a CA and
// certificates with the openssl command exactly as docs/security.md shows, runs a
// coordinator with --tls-cert/--tls-key/--tls-client-ca/--auth and a worker with its own
// certificate, and checks what is refused (plaintext, missing or foreign tokens, workers
// without certificates) and that a SIGHUP swaps the certificate while jobs go on.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

constexpr char kAlice[] = "alice-token-0123456789abcdef";
constexpr char kBob[] = "bob-token-0123456789abcdef";
constexpr char kWorker[] = "worker-token-0123456789abcdef";

std::string Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << "openssl " << args[0] << ": " << r.err;
}

// The commands of docs/security.md: a CA, then a key and a certificate signed by it.
void MakeCa(const std::string& dir, const std::string& name) {
  Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
           "-subj", "/CN=" + name, "-keyout", dir + "/" + name + ".key", "-out", dir + "/" + name + ".crt"});
}
void MakeCertificate(const std::string& dir, const std::string& ca, const std::string& name,
                     const std::string& extensions, const std::string& subject_tail = "") {
  const std::string base = dir + "/" + name;
  Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + name + subject_tail,
           "-keyout", base + ".key", "-out", base + ".csr"});
  Openssl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/" + ca + ".crt", "-CAkey", dir + "/" + ca + ".key",
           "-CAcreateserial", "-days", "2", "-extfile", Write(base + ".ext", extensions), "-out", base + ".crt"});
}
constexpr char kServerExt[] = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
constexpr char kClientExt[] = "extendedKeyUsage=clientAuth\n";
// What marks a worker's certificate: the coordinator's --worker-cert-match rule.
constexpr char kWorkerOu[] = "/OU=spriteforge-worker";

std::string Manifest(const std::string& dir, int count) {
  return Write(dir + "/job.yaml",
               "name: sealed\nmodel: tiny-sdxl\ndefaults: {width: 64, height: 64, steps: 2}\n"
               "items: [{prompt: \"sealed potion\", count: " + std::to_string(count) + ", seed: 3}]\n");
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("security");
    MakeCa(dir_, "ca");
    MakeCertificate(dir_, "ca", "server", kServerExt);
    MakeCertificate(dir_, "ca", "worker-1", kClientExt, kWorkerOu);
    Write(dir_ + "/auth.yaml", std::string("tokens:\n") +
                                   "  - {name: alice, token: " + kAlice + ", role: submitter}\n" +
                                   "  - {name: bob, token: " + kBob + ", role: submitter}\n" +
                                   "  - {name: gpu, token: " + kWorker + ", role: worker}\n");
    // The copies the coordinator serves; the test replaces them to check reloading.
    std::filesystem::copy_file(dir_ + "/server.crt", dir_ + "/serving.crt");
    std::filesystem::copy_file(dir_ + "/server.key", dir_ + "/serving.key");
  }
  std::vector<std::string> SecureFlags() const {
    return {"--worker-listen", "127.0.0.1:0", "--tls-cert", dir_ + "/serving.crt", "--tls-key",
            dir_ + "/serving.key", "--tls-client-ca", dir_ + "/ca.crt", "--auth", dir_ + "/auth.yaml",
            "--worker-cert-match", "OU=spriteforge-worker"};
  }
  // The client with explicit global flags (not the cluster's).
  CommandResult ClientWith(Cluster& cluster, const std::vector<std::string>& globals,
                           const std::vector<std::string>& args) {
    std::vector<std::string> argv = {SPRITEFORGE_CLIENT_BIN, "--coordinator", cluster.address()};
    argv.insert(argv.end(), globals.begin(), globals.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  std::string dir_;
};

TEST_F(SecurityTest, TlsTokensAndClientCertificatesEndToEnd) {
  if (GoldenModel().empty()) GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN";
  Cluster cluster(dir_);
  cluster.SetClientSecurity({dir_ + "/ca.crt", "", "", kAlice});
  cluster.StartCoordinator(0, SecureFlags());
  const std::string log = cluster.coordinator_log();
  EXPECT_TRUE(WaitForText(log, "security: TLS; 3 tokens", 1)) << Slurp(log);

  auto submitted = cluster.Client({"submit", Manifest(dir_, 3)});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = Trim(submitted.out);

  // Refused: plaintext, no token, another submitter's job.
  auto plaintext = ClientWith(cluster, {"--token", kAlice}, {"status", job});
  EXPECT_NE(plaintext.exit_code, 0);
  EXPECT_NE(plaintext.err.find("coordinator unavailable"), std::string::npos) << plaintext.err;
  auto anonymous = ClientWith(cluster, {"--tls-ca", dir_ + "/ca.crt"}, {"status", job});
  EXPECT_EQ(Trim(anonymous.err), "spriteforge status: this coordinator needs a token: pass --token or set SPRITEFORGE_TOKEN");
  auto foreign = ClientWith(cluster, {"--tls-ca", dir_ + "/ca.crt", "--token", kBob}, {"cancel", job});
  EXPECT_EQ(Trim(foreign.err), "spriteforge cancel: no job " + job);  // as if it did not exist
  auto unknown_ca = ClientWith(cluster, {"--tls-ca", dir_ + "/worker-1.crt", "--token", kAlice}, {"status", job});
  EXPECT_NE(unknown_ca.exit_code, 0);

  // A worker with the worker token but no client certificate fails the handshake; one
  // with its certificate (and no token) serves the job.
  cluster.StartWorker("no-cert", {"--tls-ca", dir_ + "/ca.crt", "--token", kWorker});
  EXPECT_TRUE(WaitForText(dir_ + "/worker-no-cert.log", "reconnecting", 60)) << Slurp(dir_ + "/worker-no-cert.log");
  EXPECT_EQ(cluster.Job(job).job().counts().done(), 0);
  cluster.KillWorker("no-cert");
  cluster.StartWorker("w1", {"--tls-ca", dir_ + "/ca.crt", "--tls-cert", dir_ + "/worker-1.crt", "--tls-key",
                             dir_ + "/worker-1.key"});
  auto done = cluster.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; }, 120);
  ASSERT_EQ(done.state(), v1::JOB_DONE) << Slurp(log);
  EXPECT_EQ(done.owner(), "alice");

  // HTTPS: /healthz open, /stats needs a client token.
  const std::string http = cluster.http_address();
  httplib::SSLClient https("127.0.0.1", std::stoi(http.substr(http.rfind(':') + 1)));
  https.set_ca_cert_path((dir_ + "/ca.crt").c_str());
  https.enable_server_certificate_verification(true);
  auto health = https.Get("/healthz");
  ASSERT_TRUE(health) << "HTTPS /healthz failed: " << httplib::to_string(health.error());
  EXPECT_EQ(health->body, "ok\n");
  EXPECT_EQ(https.Get("/stats")->status, 401);
  EXPECT_EQ(https.Get("/stats", {{"Authorization", std::string("Bearer ") + kAlice}})->status, 200);
  EXPECT_EQ(https.Get("/stats", {{"Authorization", std::string("Bearer ") + kWorker}})->status, 403);
  httplib::Client plain_http("127.0.0.1", std::stoi(http.substr(http.rfind(':') + 1)));
  auto plain = plain_http.Get("/healthz");
  EXPECT_TRUE(!plain || plain->status != 200);

  // SIGHUP: a broken key is refused and the old pair stays; then a certificate from another
  // CA replaces it while the worker stays connected and a second job runs through.
  const std::string second = Trim(cluster.Client({"submit", Manifest(dir_, 40)}).out);
  Write(dir_ + "/serving.key", "not a key\n");
  kill(cluster.coordinator_pid(), SIGHUP);
  EXPECT_TRUE(WaitForText(log, "SIGHUP: keeping the current TLS files", 5)) << Slurp(log);
  EXPECT_EQ(cluster.Client({"status", job}).exit_code, 0);
  MakeCa(dir_, "ca2");
  MakeCertificate(dir_, "ca2", "server2", kServerExt);
  std::filesystem::copy_file(dir_ + "/server2.crt", dir_ + "/serving.crt", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir_ + "/server2.key", dir_ + "/serving.key", std::filesystem::copy_options::overwrite_existing);
  kill(cluster.coordinator_pid(), SIGHUP);
  EXPECT_TRUE(WaitForText(log, "SIGHUP: TLS certificate and key reloaded", 5)) << Slurp(log);
  bool new_ca_accepted = false;
  for (int i = 0; i < 50 && !new_ca_accepted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    new_ca_accepted = ClientWith(cluster, {"--tls-ca", dir_ + "/ca2.crt", "--token", kAlice}, {"status", job}).exit_code == 0;
  }
  EXPECT_TRUE(new_ca_accepted) << "the reloaded certificate was not served";
  EXPECT_NE(cluster.Client({"status", job}).exit_code, 0);  // the old CA no longer verifies it
  cluster.SetClientSecurity({dir_ + "/ca2.crt", "", "", kAlice});
  EXPECT_EQ(ClientWith(cluster, {"--tls-ca", dir_ + "/ca2.crt", "--token", kAlice}, {"watch", second, "--quiet"}).exit_code, 0);
  EXPECT_NE(Slurp(log).find("job " + second + " finished"), std::string::npos);
  EXPECT_EQ(Slurp(log).find("worker w1 disconnected"), std::string::npos) << "the reload dropped the worker";
  cluster.KillCoordinator();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/spriteforge.db-tls/key.pem"));  // reused by the next start
}

// Opens a worker stream and registers: "registered", or the refusal's message.
std::string RegisterAsWorker(const std::string& address, const ChannelSecurity& security) {
  auto channel = DialCoordinator(address, security, grpc::ChannelArguments());
  if (!channel.ok()) return std::string(channel.status().message());
  auto stub = v1::WorkerGateway::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->Connect(&ctx);
  v1::WorkerMessage hello;
  v1::Register* reg = hello.mutable_register_();
  reg->set_worker_id("probe");
  reg->add_models("tiny-sdxl");
  reg->set_max_batch(1);
  reg->mutable_memory()->set_budget_bytes(1'000'000'000ull);
  stream->Write(hello);
  v1::CoordinatorMessage reply;
  const bool registered = stream->Read(&reply) && reply.has_registered();
  if (registered) ctx.TryCancel();
  const grpc::Status status = stream->Finish();
  return registered ? "registered" : status.error_message();
}

TEST_F(SecurityTest, AClientCertificateWithoutAWorkerTokenIsNotAWorker) {
  // One port: submitters hold certificates of the same CA as workers.
  MakeCertificate(dir_, "ca", "alice", kClientExt);
  std::vector<std::string> flags = SecureFlags();
  flags.erase(flags.begin(), flags.begin() + 2);  // no --worker-listen
  Cluster cluster(dir_);
  const ChannelSecurity alice{dir_ + "/ca.crt", dir_ + "/alice.crt", dir_ + "/alice.key", ""};
  cluster.SetClientSecurity(alice);
  cluster.StartCoordinator(0, flags);

  EXPECT_EQ(RegisterAsWorker(cluster.address(), alice),
            "client certificate 'CN=alice' is not a worker's: workers need a worker token or a certificate matching "
            "--worker-cert-match");
  EXPECT_EQ(RegisterAsWorker(cluster.address(), {alice.ca_file, alice.cert_file, alice.key_file, kAlice}),
            "token 'alice' (submitter) may not connect as a worker");
  // A worker proves its role with its marked certificate, or with a worker token.
  EXPECT_EQ(RegisterAsWorker(cluster.address(), {dir_ + "/ca.crt", dir_ + "/worker-1.crt", dir_ + "/worker-1.key", ""}),
            "registered");
  EXPECT_EQ(RegisterAsWorker(cluster.address(), {alice.ca_file, alice.cert_file, alice.key_file, kWorker}),
            "registered");

  auto bad_rule = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", dir_ + "/other.db",
                              "--output", dir_ + "/out2", "--http", "127.0.0.1:0", "--worker-cert-match", "OU"});
  EXPECT_EQ(Trim(bad_rule.err), "spriteforge-coordinator: error: --worker-cert-match 'OU': expected OU=NAME, CN=NAME, "
                                "O=NAME, URI:NAME or DNS:NAME");
}

TEST_F(SecurityTest, WithoutTlsOrTokensOnlyLoopbackUnlessInsecureListen) {
  const std::string db = dir_ + "/db.sqlite", out = dir_ + "/out";
  auto refused = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "0.0.0.0:0", "--db", db, "--output", out,
                             "--http", "127.0.0.1:0"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(Trim(refused.err),
            "spriteforge-coordinator: error: 0.0.0.0:0: without --tls-cert or --auth the coordinator serves this "
            "machine only (127.0.0.1, ::1); use --insecure-listen 0.0.0.0:0 to serve others without them");
  auto worker_port = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--worker-listen",
                                 "0.0.0.0:0", "--db", db, "--output", out, "--http", "127.0.0.1:0"});
  EXPECT_EQ(worker_port.exit_code, 2);
  auto bad_auth = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", db, "--output", out,
                              "--http", "127.0.0.1:0", "--auth", Write(dir_ + "/bad.yaml", "tokens: [{name: a}]\n")});
  EXPECT_EQ(Trim(bad_auth.err), "spriteforge-coordinator: error: " + dir_ +
                                    "/bad.yaml: tokens[0]: role is required");
  auto mismatched = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", db, "--output", out,
                                "--http", "127.0.0.1:0", "--tls-cert", dir_ + "/server.crt", "--tls-key",
                                dir_ + "/worker-1.key"});
  EXPECT_EQ(Trim(mismatched.err), "spriteforge-coordinator: error: " + dir_ +
                                      "/worker-1.key is not the private key of the certificate in " + dir_ +
                                      "/server.crt");

  // The HTTP port takes jobs too: elsewhere than loopback it needs tokens.
  auto open_http = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", db, "--output", out,
                               "--http", "0.0.0.0:0"});
  EXPECT_EQ(open_http.exit_code, 2);
  EXPECT_EQ(Trim(open_http.err),
            "spriteforge-coordinator: error: --http 0.0.0.0:0: without --auth anyone who reaches this address can "
            "submit, cancel and read every job; serve HTTP on 127.0.0.1, add --auth, or use --insecure-listen instead "
            "of --listen to serve others without tokens");
  // TLS alone encrypts but admits anyone.
  auto tls_alone = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "0.0.0.0:0", "--db", db, "--output", out,
                               "--http", "127.0.0.1:0", "--tls-cert", dir_ + "/server.crt", "--tls-key",
                               dir_ + "/server.key"});
  EXPECT_EQ(tls_alone.exit_code, 2);
  EXPECT_NE(tls_alone.err.find("--tls-cert without --auth encrypts but admits anyone"), std::string::npos)
      << tls_alone.err;

  Cluster cluster(dir_);
  const int port = FreePort();
  const std::string ready = dir_ + "/ready-insecure.json";
  Process insecure({SPRITEFORGE_COORDINATOR_BIN, "--insecure-listen", "0.0.0.0:" + std::to_string(port), "--db", db,
                    "--output", out, "--http", "127.0.0.1:0", "--ready-file", ready},
                   dir_ + "/insecure.log");
  EXPECT_TRUE(WaitForText(dir_ + "/insecure.log", "--insecure-listen 0.0.0.0:" + std::to_string(port) +
                                                      ": plaintext and no tokens; anyone who reaches this port can",
                          10))
      << Slurp(dir_ + "/insecure.log");
  insecure.Kill(SIGTERM);
  EXPECT_EQ(insecure.Wait(), 0);
}

}  // namespace
}  // namespace spriteforge::testing
