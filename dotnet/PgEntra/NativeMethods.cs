// The C API of pgentra (crates/pgentra-capi/include/pgentra.h), declared once.
using System;
using System.Runtime.InteropServices;

namespace PgEntra
{
    /// <summary>pgentra_options, field for field (see pgentra.h). Strings are UTF-8, NUL-terminated,
    /// owned by the caller and only read during pgentra_connector_new.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeOptions
    {
        public uint StructSize;
        public IntPtr Prefix;
        public IntPtr ConnectionString;
        public IntPtr ClientId;
        public IntPtr TenantId;
        public IntPtr ClientSecret;
        public IntPtr Scope;
        public uint Credential;
        public int AllowInsecure;
        public uint TimeoutMs;
        public int AllowUnverifiedTls;
    }

    /// <summary>P/Invoke declarations of libpgentra. Every string crosses the boundary as an IntPtr
    /// to UTF-8 bytes (see Utf8): Mono's default string marshalling is not UTF-8-safe.</summary>
    internal static class NativeMethods
    {
        internal const string Library = "pgentra";

        // pgentra_status values (numbers are part of the ABI).
        internal const int Ok = 0;
        internal const int ErrConfig = 1;
        internal const int Pending = 200;

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr pgentra_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pgentra_options_init(ref NativeOptions options);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_connector_from_env(IntPtr prefix, out ConnectorHandle connector);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_connector_new(ref NativeOptions options, out ConnectorHandle connector);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_token(ConnectorHandle connector, out IntPtr token);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_token_begin(ConnectorHandle connector, out IntPtr op);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_token_poll(IntPtr op, out IntPtr token);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pgentra_token_op_free(IntPtr op);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_connection_string(ConnectorHandle connector, uint format, out IntPtr connectionString);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_connection_string_with(ConnectorHandle connector, uint format, IntPtr overrides, out IntPtr connectionString);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_settings_string(ConnectorHandle connector, uint format, IntPtr overrides, out IntPtr settings);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_user(ConnectorHandle connector, out IntPtr user);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pgentra_invalidate(ConnectorHandle connector);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_invalidate_if(ConnectorHandle connector, IntPtr rejected);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_connect_failed(ConnectorHandle connector, IntPtr token, IntPtr sqlstate, int usedPassword, out int retry);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pgentra_token_requests(ConnectorHandle connector, out ulong count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pgentra_string_free(IntPtr s);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pgentra_connector_free(IntPtr connector);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr pgentra_last_error_message();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr pgentra_last_error_code();
    }

    /// <summary>Owns one pgentra_connector. The P/Invoke marshaller adds a reference around every
    /// call that takes the handle, so Dispose on one thread while another thread is inside a call
    /// defers pgentra_connector_free until that call returns; the finalizer frees a handle that
    /// was never disposed.</summary>
    internal sealed class ConnectorHandle : SafeHandle
    {
        // Called by the marshaller for out parameters.
        private ConnectorHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.pgentra_connector_free(handle);
            return true;
        }
    }
}
