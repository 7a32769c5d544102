/** Size limits the frame parser enforces. Every one is a coded error when exceeded. */
export interface FrameLimits {
  /** Largest frame in bytes (command, headers, body and NUL). Default 4 MiB. */
  maxFrameSize: number;
  /** Largest body in bytes. Default 4 MiB. */
  maxBodySize: number;
  /** Most header entries in one frame. Default 64. */
  maxHeaders: number;
  /** Longest command or header line in bytes, without its EOL. Default 8 KiB. */
  maxHeaderLineLength: number;
}

/** The default frame limits (docs/configuration.md "Defaults for limits"). */
export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = Object.freeze({
  maxFrameSize: 4 * 1024 * 1024,
  maxBodySize: 4 * 1024 * 1024,
  maxHeaders: 64,
  maxHeaderLineLength: 8 * 1024,
});
