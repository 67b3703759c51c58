"""An everyday kubectl session against the local cluster: how many of its commands succeed.

Starts a local cluster whose kubelet runs pods as processes (image local/python is this
interpreter), then runs, in order, the commands a newcomer types from a tutorial: inspect the
cluster, apply a small application (Deployment, Service, ConfigMap, Secret, RBAC, PVC, PDB, HPA,
Ingress, NetworkPolicy, CronJob, StatefulSet, DaemonSet), watch it roll out, read logs, exec,
copy files, port-forward, scale, update and roll back, drain, and clean up. Every command
succeeds on a conformant cluster; each line printed says whether it did here, and the last line
how many did.

    python bench/kubectl_session.py [--verbose]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from gyre_local.cluster import running_cluster

APP = textwrap.dedent(
    """
    apiVersion: v1
    kind: Namespace
    metadata: {name: demo}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: demo}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
            - name: web
              image: local/python
              command: [python, -m, http.server, --bind, 127.0.0.1]
              args: ["$(PORT)"]
              ports: [{name: http, containerPort: 8080}]
              readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
              resources: {requests: {cpu: 50m, memory: 32Mi}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: demo}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http}]
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: demo}
    data: {greeting: hello}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: credentials, namespace: demo}
    stringData: {password: s3cret}
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: reader, namespace: demo}
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: reader, namespace: demo}
    rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: reader, namespace: demo}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
    subjects: [{kind: ServiceAccount, name: reader, namespace: demo}]
    ---
    apiVersion: v1
    kind: PersistentVolumeClaim
    metadata: {name: data, namespace: demo}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
    ---
    apiVersion: policy/v1
    kind: PodDisruptionBudget
    metadata: {name: web, namespace: demo}
    spec:
      minAvailable: 1
      selector: {matchLabels: {app: web}}
    ---
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    metadata: {name: web, namespace: demo}
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
      minReplicas: 2
      maxReplicas: 4
      metrics:
        - type: Resource
          resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
    ---
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: web, namespace: demo}
    spec:
      rules:
        - host: web.local
          http:
            paths:
              - path: /
                pathType: Prefix
                backend: {service: {name: web, port: {name: http}}}
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: web, namespace: demo}
    spec:
      podSelector: {matchLabels: {app: web}}
      ingress: [{ports: [{port: http}]}]
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: report, namespace: demo}
    spec:
      schedule: "*/5 * * * *"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - {name: report, image: local/python, command: [python, -c, "print('report')"]}
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db, namespace: demo}
    spec:
      serviceName: db
      replicas: 2
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec:
          containers:
            - name: db
              image: local/python
              command: [python, -c, "import time; time.sleep(3600)"]
              volumeMounts: [{name: data, mountPath: /data}]
      volumeClaimTemplates:
        - metadata: {name: data}
          spec:
            accessModes: [ReadWriteOnce]
            resources: {requests: {storage: 1Gi}}
    ---
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent, namespace: demo}
    spec:
      selector: {matchLabels: {app: agent}}
      template:
        metadata: {labels: {app: agent}}
        spec:
          containers:
            - name: agent
              image: local/python
              command: [python, -c, "import time; time.sleep(3600)"]
    """
)

SESSION = [
    "kubectl version",
    "kubectl cluster-info",
    "kubectl get nodes -o wide",
    "kubectl get namespaces",
    "kubectl api-resources",
    "kubectl auth whoami",
    "kubectl auth can-i create deployments",
    "kubectl apply -f app.yaml",
    "kubectl apply -f app.yaml",
    "kubectl diff -f app.yaml",
    "kubectl -n demo rollout status deployment/web --timeout=60s",
    "kubectl -n demo rollout status statefulset/db --timeout=60s",
    "kubectl -n demo rollout status daemonset/agent --timeout=60s",
    "kubectl -n demo get all -o wide",
    "kubectl -n demo get svc,endpoints,endpointslices",
    "kubectl -n demo get pvc,pdb,hpa,ingress,networkpolicy,cronjob",
    "kubectl get pv,storageclass",
    "kubectl -n demo describe deployment web",
    "kubectl -n demo describe pod -l app=web",
    "kubectl -n demo get events --sort-by=.lastTimestamp",
    "kubectl -n demo events --for deployment/web",
    "kubectl -n demo logs deployment/web --tail=5",
    "timeout 3 kubectl -n demo logs -f deployment/web; test $? = 124",
    "kubectl -n demo exec deployment/web -- python -c 'print(42)'",
    "echo hello > note.txt && kubectl -n demo cp note.txt db-0:/tmp/note.txt",
    "kubectl -n demo port-forward svc/web 18080:80 & sleep 2; "
    "curl -sf http://127.0.0.1:18080/ > /dev/null; code=$?; kill %1; exit $code",
    "kubectl get --raw /api/v1/namespaces/demo/services/web:http/proxy/ > /dev/null",
    "kubectl -n demo run once --image=local/python --restart=Never -i --rm "
    "--command -- python -c 'print(7)'",
    "kubectl -n demo scale deployment web --replicas=3",
    "kubectl -n demo set image deployment/web web=local/python:2",
    "kubectl -n demo rollout status deployment/web --timeout=60s",
    "kubectl -n demo rollout history deployment/web",
    "kubectl -n demo rollout undo deployment/web",
    "kubectl -n demo rollout restart deployment/web",
    "kubectl -n demo label deployment web tier=frontend",
    "kubectl -n demo annotate deployment web owner=ml-platform",
    "kubectl -n demo get pods -l app=web -o jsonpath='{.items[*].status.phase}'",
    "kubectl -n demo get secret credentials -o jsonpath='{.data.password}'",
    'kubectl -n demo patch configmap settings -p \'{"data":{"colour":"blue"}}\'',
    "kubectl -n demo create token reader",
    "kubectl -n demo auth can-i list pods --as=system:serviceaccount:demo:reader",
    "kubectl -n demo autoscale deployment web --min=2 --max=5 --cpu-percent=60 --name=web2",
    # Like metrics-server, the metrics API reports a pod after two samples (about 20 s).
    "sleep 20; kubectl -n demo top pods",
    "kubectl top node",
    "kubectl -n demo create job manual-report --from=cronjob/report",
    "kubectl create namespace scratch",
    "kubectl -n demo create configmap extra --from-literal=a=b",
    "kubectl explain deployment.spec.strategy",
    "kubectl cordon local && kubectl uncordon local",
    "kubectl drain local --ignore-daemonsets --delete-emptydir-data --force --timeout=20s; "
    "status=$?; kubectl uncordon local; exit $status",
    "kubectl get --raw /readyz",
    "kubectl delete namespace demo --wait --timeout=60s",
]


def main() -> int:
    """Run the session and print each command's result, then how many succeeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print each command's output")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kubectl-session-"))
    (workdir / "app.yaml").write_text(APP)
    succeeded = 0
    with running_cluster(kubelet="process", image_map={"local/python": sys.executable}) as cluster:
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig_path),
            "KUBECACHEDIR": str(workdir / "cache"),
        }
        for command in SESSION:
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            ok = result.returncode == 0
            succeeded += ok
            said = (result.stderr if not ok else result.stdout).strip().splitlines()
            print(f"{'ok  ' if ok else 'FAIL'} {command}")
            if not ok or options.verbose:
                for line in said[: 20 if options.verbose else 2]:
                    print(f"       {line[:160]}")
    print(f"{succeeded} of {len(SESSION)} commands succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
