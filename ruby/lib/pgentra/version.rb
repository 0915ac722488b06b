# frozen_string_literal: true

module PgEntra
  # The gem's version; the native extension's is PgEntra::NATIVE_VERSION (the same number).
  VERSION = "0.1.0"
end
