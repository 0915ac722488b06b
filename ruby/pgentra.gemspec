# frozen_string_literal: true

# A precompiled platform gem: ruby/build.sh builds the native extension (Rust, magnus) in
# release, copies it to lib/pgentra/pgentra_ext.so and runs `gem build` here, writing
# dist/ruby/pgentra-<version>-<platform>.gem. Installing it needs no compiler and no network:
#   gem install --local dist/ruby/pgentra-*.gem
require_relative "lib/pgentra/version"

extension = File.join(__dir__, "lib", "pgentra", "pgentra_ext.so")
warn "pgentra.gemspec: #{extension} is missing; run ruby/build.sh" unless File.exist?(extension)

Gem::Specification.new do |spec|
  spec.name = "pgentra"
  spec.version = PgEntra::VERSION
  spec.authors = ["pgentra contributors"]
  spec.license = "MIT"
  spec.summary = "Passwordless Azure Database for PostgreSQL: Microsoft Entra ID tokens for ruby-pg and ActiveRecord"
  spec.description = <<~DESC
    pgentra finds the database configuration Azure Service Connector set (AZURE_POSTGRESQL_*, any
    connection string dialect), acquires Microsoft Entra ID tokens through the credential chain
    (managed identity, service principal, workload identity, Azure CLI, azd), caches them with
    refresh ahead of expiry, and hands them to ruby-pg (PgEntra.connect, PgEntra.conninfo) or to
    ActiveRecord's postgresql adapter (require "pgentra/active_record"). The core is Rust; this
    gem carries it precompiled.
  DESC
  # The extension is built for this machine's platform and Ruby's 3.1 ABI.
  spec.platform = Gem::Platform::CURRENT
  spec.required_ruby_version = [">= 3.1", "< 3.2"]
  spec.files = Dir.chdir(__dir__) do
    Dir["lib/**/*.rb"] + Dir["lib/pgentra/*.so"] + %w[README.md pgentra.gemspec]
  end.sort
  spec.require_paths = ["lib"]
  # No runtime dependency: pg is required only by PgEntra.connect (and ActiveRecord's adapter),
  # and an application brings the versions it uses.
  spec.metadata["rubygems_mfa_required"] = "true"
end
