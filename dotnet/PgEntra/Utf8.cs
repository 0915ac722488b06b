using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace PgEntra
{
    /// <summary>UTF-8 marshalling by hand, both ways.</summary>
    internal static class Utf8
    {
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>Reads a NUL-terminated UTF-8 string owned by the library (not freed).</summary>
        internal static string Read(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            byte[] bytes = Copy(p);
            return Strict.GetString(bytes);
        }

        /// <summary>Copies a string returned to the caller by pgentra, wipes the managed copy of its
        /// bytes, and releases the native one with pgentra_string_free (which wipes it too).</summary>
        internal static string TakeAndFree(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            byte[] bytes = null;
            try
            {
                bytes = Copy(p);
                return Strict.GetString(bytes);
            }
            finally
            {
                if (bytes != null) Array.Clear(bytes, 0, bytes.Length);
                NativeMethods.pgentra_string_free(p);
            }
        }

        private static byte[] Copy(IntPtr p)
        {
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            byte[] bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return bytes;
        }

        /// <summary>A NUL-terminated UTF-8 copy of a string in unmanaged memory (IntPtr.Zero for
        /// null), recorded in <paramref name="allocated"/> for <see cref="WipeAndFree"/>.</summary>
        internal static IntPtr Alloc(string name, string value, List<KeyValuePair<IntPtr, int>> allocated)
        {
            if (value == null) return IntPtr.Zero;
            if (value.IndexOf('\0') >= 0)
                throw new PgEntraException(ErrorKind.InvalidArgument, name + " contains a NUL character", null);
            byte[] bytes;
            try
            {
                bytes = Strict.GetBytes(value);
            }
            catch (EncoderFallbackException)
            {
                throw new PgEntraException(ErrorKind.InvalidUtf8, name + " is not valid UTF-16 (a lone surrogate)", null);
            }
            IntPtr p = Marshal.AllocHGlobal(bytes.Length + 1);
            allocated.Add(new KeyValuePair<IntPtr, int>(p, bytes.Length + 1));
            Marshal.Copy(bytes, 0, p, bytes.Length);
            Marshal.WriteByte(p, bytes.Length, 0);
            Array.Clear(bytes, 0, bytes.Length);
            return p;
        }

        /// <summary>Zeroes (the strings may hold secrets) and frees what Alloc allocated.</summary>
        internal static void WipeAndFree(List<KeyValuePair<IntPtr, int>> allocated)
        {
            foreach (KeyValuePair<IntPtr, int> a in allocated)
            {
                for (int i = 0; i < a.Value; i++) Marshal.WriteByte(a.Key, i, 0);
                Marshal.FreeHGlobal(a.Key);
            }
            allocated.Clear();
        }
    }
}
