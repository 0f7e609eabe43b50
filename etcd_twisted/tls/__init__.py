"""TLS as etcd configures it: certificates, client-certificate checks, CRLs, cipher suites,
protocol versions and self-signed certificates (``--auto-tls``), for the client and peer ports.

``info`` holds one side's settings (`TLSInfo`), ``context`` builds OpenSSL contexts from it,
``gate`` runs the checks etcd makes after a handshake (CRL, the peer's SAN), ``ciphers``
maps Go's cipher suite names to OpenSSL's, and ``selfcert`` makes ``--auto-tls`` certificates.
"""
