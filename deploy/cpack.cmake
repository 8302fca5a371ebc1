# Debian packages: `cd build && cpack -G DEB` makes
#   baton-broker_VERSION_ARCH.deb  batond, batonctl, batond.service, the migrations,
#                                  /etc/baton/baton.conf (a conffile), man pages
#   baton-agent_VERSION_ARCH.deb   baton-agent, libbaton-agent (+ header, .pc),
#                                  baton-agent@.service, man page
# one per install component (deploy/CMakeLists.txt, server/, worker/, migrations/).
# tests/package checks what comes out.

set(CPACK_GENERATOR DEB)
# Values reach CPackConfig.cmake as written here (the ignore regexes below
# hold backslashes).
set(CPACK_VERBATIM_VARIABLES ON)
set(CPACK_PACKAGE_NAME baton)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Baton")
set(BATON_PACKAGE_MAINTAINER "Baton maintainers <baton@example.invalid>"
    CACHE STRING "Maintainer field of the Debian packages")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${BATON_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Install with DESTDIR, so the install scripts see the real prefix (/usr) and
# the absolute paths (/etc, /lib/systemd) land in the package tree.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)

set(CPACK_DEB_COMPONENT_INSTALL ON)
# Only these: an install rule without a component ("Unspecified") is a mistake,
# not a third package.
set(CPACK_COMPONENTS_ALL broker agent)

# Maintainer scripts: 0755/0644 whatever the checkout's modes are.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(scripts ${PROJECT_SOURCE_DIR}/deploy/debian)

# Runtime libraries as dpkg-shlibdeps computes them for these binaries on
# Debian 12 (libpq5 >= 14: the store uses pipeline mode). Written out rather
# than computed at package time, so packaging needs no dpkg-dev; tests/package
# checks that every library the binaries link is covered.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
set(agent_libs "libc6 (>= 2.34), libinih1 (>= 40), libnanomsg5 (>= 1.1.5), libprotobuf-c1 (>= 1.0.1), libsodium23 (>= 1.0.14), libuv1 (>= 1.4.2)")

set(CPACK_DEBIAN_BROKER_PACKAGE_NAME baton-broker)
set(CPACK_COMPONENT_BROKER_DISPLAY_NAME "Baton broker")
set(CPACK_COMPONENT_BROKER_DESCRIPTION
  "Baton broker: multi-vendor work orchestration server
batond routes work packages to outsourcing vendors' agents, keeps every
assignment and handoff in PostgreSQL and hands work off when an agent or a
vendor fails. Several brokers may share one database for high availability.
Also batonctl, the admin and submitter command line, and the systemd unit.")
set(CPACK_DEBIAN_BROKER_PACKAGE_DEPENDS
  "${agent_libs}, libjansson4 (>= 2.14), libmicrohttpd12 (>= 0.9.50), libpq5 (>= 14~~), adduser")
# The embedded default database (no `db` configured) runs PostgreSQL's own
# server binaries; a broker pointed at a remote PostgreSQL needs none.
set(CPACK_DEBIAN_BROKER_PACKAGE_RECOMMENDS "postgresql-15")
set(CPACK_DEBIAN_BROKER_PACKAGE_SUGGESTS "bash-completion")
set(CPACK_DEBIAN_BROKER_PACKAGE_CONTROL_EXTRA
  ${scripts}/postinst ${scripts}/prerm ${scripts}/postrm ${scripts}/broker/conffiles)

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME baton-agent)
set(CPACK_COMPONENT_AGENT_DISPLAY_NAME "Baton worker agent")
set(CPACK_COMPONENT_AGENT_DESCRIPTION
  "Baton worker agent: runs a vendor's work packages
baton-agent connects to a Baton broker for one vendor, takes work packages
and runs a handler command for each, reporting progress, checkpoints and
results. Includes libbaton-agent for embedding the agent in a program, and a
systemd template unit (one instance per vendor configuration).")
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "${agent_libs}, adduser")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
  ${scripts}/postinst ${scripts}/prerm ${scripts}/postrm ${scripts}/agent/triggers)

# `make package_source` (which include(CPack) also adds): the sources only,
# not the build trees and local data that may sit in the checkout.
# Anchored at the checkout, whose own path may well contain /build or /var.
set(CPACK_SOURCE_GENERATOR TGZ)
string(REGEX REPLACE "([][+.*?()^$|\\])" "\\\\\\1" src_rx "${PROJECT_SOURCE_DIR}")
set(CPACK_SOURCE_IGNORE_FILES "^${src_rx}/(\\.git|build[^/]*|var)/" "__pycache__")

include(CPack)
