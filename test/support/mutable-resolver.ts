import * as grpc from "@grpc/grpc-js";

/**
 * A name resolver for `fleet:///<name>` whose address list the test changes, standing in for DNS
 * (a Kubernetes headless service): like DNS, the channel only sees a change when it re-resolves,
 * which it does when a connection closes, e.g. at the servers' maximum connection age.
 */
const fleets = new Map<string, string[]>();
let resolutions = 0;

export function setFleet(name: string, addresses: string[]): void {
  fleets.set(name, addresses);
}

/** How many times channels asked to resolve, for the test's figures. */
export const resolutionCount = () => resolutions;

// Like grpc's DNS resolver, answer at most this often: balancers ask again at once on failure.
const minIntervalMs = 100;

class FleetResolver implements grpc.experimental.Resolver {
  readonly #name: string;
  readonly #listener: grpc.experimental.ResolverListener;
  #last = 0;
  #pending: NodeJS.Timeout | undefined;

  constructor(target: grpc.experimental.GrpcUri, listener: grpc.experimental.ResolverListener) {
    this.#name = target.path;
    this.#listener = listener;
  }

  updateResolution(): void {
    if (this.#pending) return;
    // Listeners must not be called synchronously from updateResolution.
    const delay = Math.max(0, this.#last + minIntervalMs - Date.now());
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.#last = Date.now();
      resolutions++;
      const endpoints = (fleets.get(this.#name) ?? []).map((address) => {
        const [host, port] = address.split(":");
        return { addresses: [{ host: host as string, port: Number(port) }] };
      });
      this.#listener(grpc.experimental.statusOrFromValue(endpoints), {}, null, "");
    }, delay);
  }

  destroy(): void {
    clearTimeout(this.#pending);
    this.#pending = undefined;
  }

  static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
    return target.path;
  }
}

grpc.experimental.registerResolver("fleet", FleetResolver as never);
