#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The per-thread message behind `wideep_last_error()`, kept in a pthread key so threads never see each other's
/// errors. Each thread's string is freed when it is replaced or when the thread exits.
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in free(pointer) }
        precondition(rc == 0, "pthread_key_create failed with \(rc)")
        return key
    }()

    /// The calling thread's message, or "" when none is set.
    static var current: UnsafePointer<CChar> {
        if let raw = pthread_getspecific(key) { return UnsafePointer(raw.assumingMemoryBound(to: CChar.self)) }
        return UnsafePointer(ABIStrings.empty)
    }

    /// Replaces the calling thread's message.
    static func set(_ message: String) {
        let old = pthread_getspecific(key)
        pthread_setspecific(key, strdup(message))
        free(old)
    }

    /// Clears the calling thread's message (at the start of each call).
    static func clear() {
        guard let old = pthread_getspecific(key) else { return }
        pthread_setspecific(key, nil)
        free(old)
    }
}
