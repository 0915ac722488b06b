using System;

namespace PgEntra
{
    /// <summary>Kinds of pgentra errors: the numbers of the C API's pgentra_status (never reused
    /// or renumbered). 1 to 7 are pgentra's own error kinds, 100 and up errors of the C boundary.</summary>
    public enum ErrorKind
    {
        /// <summary>A variable, key or argument is missing, malformed or contradictory.</summary>
        Configuration = 1,
        /// <summary>No credential applies, or one could not be built or run.</summary>
        Credential = 2,
        /// <summary>The identity service answered with an error (see ServiceCode).</summary>
        IdentityService = 3,
        /// <summary>The identity service or the database could not be reached in time.</summary>
        Network = 4,
        /// <summary>A token would travel without TLS, or TLS failed.</summary>
        TlsPolicy = 5,
        /// <summary>The database refused the connection or a query failed.</summary>
        Database = 6,
        /// <summary>A bug in pgentra.</summary>
        Internal = 7,
        /// <summary>A required pointer was NULL at the C boundary (a bug in this wrapper).</summary>
        NullArgument = 100,
        /// <summary>A string argument was not valid UTF-8.</summary>
        InvalidUtf8 = 101,
        /// <summary>pgentra panicked; the panic was caught and the process is intact.</summary>
        Panic = 102,
        /// <summary>An argument was out of range (e.g. an unknown Format), or a string held a NUL.</summary>
        InvalidArgument = 103,
    }

    /// <summary>Base of every exception thrown by pgentra. Message is the core's own message: it
    /// names the variable, key or argument at fault and never contains a secret.</summary>
    public class PgEntraException : Exception
    {
        /// <summary>An error of <paramref name="kind"/> with the core's message and, if any, the
        /// identity service's code.</summary>
        public PgEntraException(ErrorKind kind, string message, string serviceCode)
            : base(message ?? ("pgentra error " + (int)kind))
        {
            Kind = kind;
            ServiceCode = serviceCode;
        }

        /// <summary>The kind of error (the C API's status number).</summary>
        public ErrorKind Kind { get; private set; }

        /// <summary>The identity service's own code (e.g. "AADSTS7000215"), or null.</summary>
        public string ServiceCode { get; private set; }

        /// <summary>The one mapping from a status number to an exception type.</summary>
        internal static PgEntraException FromStatus(int status, string message, string serviceCode)
        {
            ErrorKind kind = (ErrorKind)status;
            switch (kind)
            {
                case ErrorKind.Configuration: return new ConfigurationException(message, serviceCode);
                case ErrorKind.Credential: return new CredentialException(message, serviceCode);
                case ErrorKind.IdentityService: return new IdentityServiceException(message, serviceCode);
                case ErrorKind.Network: return new NetworkException(message, serviceCode);
                case ErrorKind.TlsPolicy: return new TlsPolicyException(message, serviceCode);
                case ErrorKind.Database: return new DatabaseException(message, serviceCode);
                default: return new PgEntraException(kind, message, serviceCode);
            }
        }
    }

    /// <summary>A variable, key or argument is missing, malformed or contradictory (exit code 3 of the CLI).</summary>
    public class ConfigurationException : PgEntraException
    {
        /// <summary>An error with the core\'s message and, if any, the identity service\'s code.</summary>
        public ConfigurationException(string message, string serviceCode = null)
            : base(ErrorKind.Configuration, message, serviceCode) { }
    }

    /// <summary>No credential applies, or a credential could not be built or run.</summary>
    public class CredentialException : PgEntraException
    {
        /// <summary>An error with the core\'s message and, if any, the identity service\'s code.</summary>
        public CredentialException(string message, string serviceCode = null)
            : base(ErrorKind.Credential, message, serviceCode) { }
    }

    /// <summary>The identity service answered with an error; ServiceCode carries its code.</summary>
    public class IdentityServiceException : PgEntraException
    {
        /// <summary>An error with the core\'s message and, if any, the identity service\'s code.</summary>
        public IdentityServiceException(string message, string serviceCode = null)
            : base(ErrorKind.IdentityService, message, serviceCode) { }
    }

    /// <summary>The identity service or the database could not be reached in time.</summary>
    public class NetworkException : PgEntraException
    {
        /// <summary>An error with the core\'s message and, if any, the identity service\'s code.</summary>
        public NetworkException(string message, string serviceCode = null)
            : base(ErrorKind.Network, message, serviceCode) { }
    }

    /// <summary>A token would travel without TLS (sslmode disable/allow/prefer), or TLS failed.</summary>
    public class TlsPolicyException : PgEntraException
    {
        /// <summary>An error with the core\'s message and, if any, the identity service\'s code.</summary>
        public TlsPolicyException(string message, string serviceCode = null)
            : base(ErrorKind.TlsPolicy, message, serviceCode) { }
    }

    /// <summary>The database refused the connection or a query failed.</summary>
    public class DatabaseException : PgEntraException
    {
        /// <summary>An error with the core\'s message and, if any, the identity service\'s code.</summary>
        public DatabaseException(string message, string serviceCode = null)
            : base(ErrorKind.Database, message, serviceCode) { }
    }
}
