/*
 * Baton's own error codes. Functions return 0 on success and a negative code on
 * failure; libuv's -errno codes pass through unchanged, Baton's codes start just
 * above BT_ERR_BASE (-30000), far below any errno, so the two never collide. One X-macro generates the enum and
 * bt_strerror(), so a new code cannot be added without its message.
 */
#ifndef BT_ERR_H
#define BT_ERR_H

#define BT_ERR_BASE (-30000)

#define BT_ERRNO_MAP(X)                                                        \
  X(EPROTO, "malformed or invalid message")                                    \
  X(EVERSION, "protocol version not supported")                                \
  X(EAUTH, "authentication failed")                                            \
  X(ECONFLICT, "conflicts with existing state")                                \
  X(ENOTFOUND, "not found")                                                    \
  X(EDBDOWN, "store unavailable")                                              \
  X(EDBRETRY, "transient store error, retry")                                  \
  X(EDB, "store error")                                                        \
  X(ELIMIT, "limit exceeded")                                                  \
  X(EINVAL, "invalid argument")                                                \
  X(ESTALE, "stale attempt")                                                   \
  X(ESTATE, "not allowed in the current state")                                \
  X(ECONFIG, "invalid configuration")                                          \
  X(ESHUTDOWN, "shutting down")                                               \
  X(EFENCED, "another broker holds the leader lease")

enum {
  BT__ERR_FIRST = BT_ERR_BASE,
#define BT_ERR_ENUM(name, msg) BT_##name,
  BT_ERRNO_MAP(BT_ERR_ENUM)
#undef BT_ERR_ENUM
  BT__ERR_LAST
};

/* Message for a Baton code, a libuv/-errno code, or "success" for 0. Returns a
 * static string. */
const char *bt_strerror(int code);

#endif
